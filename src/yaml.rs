//! Located YAML: a parsed document where every value knows its `line:column`,
//! and a serde deserializer over it that collects every error instead of stopping
//! at the first.
//!
//! Runbooks and the config file both go through here: the text is parsed once by
//! serde-saphyr (which rejects duplicate keys and bounds alias expansion) into a
//! [`Node`] tree, then typed structs are deserialized from that tree with
//! [`from_node`]. Unknown keys, wrong types and missing fields all become
//! [`Diagnostic`]s that name the place. This module knows nothing about runbooks.

mod de;

use std::cell::RefCell;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

pub(crate) use de::quoted_list;
pub use de::{Checked, Located, NodeDeserializer};

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Loc {
    /// A position in a file (1-based line and column).
    At {
        /// 1-based line.
        line: u64,
        /// 1-based column.
        column: u64,
    },
    /// An environment variable that overrode a config key.
    Env(String),
    /// Position unknown (for example the empty document).
    Unknown,
}

impl Loc {
    /// A file position.
    pub fn at(line: u64, column: u64) -> Self {
        if line == 0 {
            Loc::Unknown
        } else {
            Loc::At { line, column }
        }
    }

    /// The line, when the value came from a file.
    pub fn line(&self) -> Option<u64> {
        match self {
            Loc::At { line, .. } => Some(*line),
            _ => None,
        }
    }

    /// The column, when the value came from a file.
    pub fn column(&self) -> Option<u64> {
        match self {
            Loc::At { column, .. } => Some(*column),
            _ => None,
        }
    }
}

/// One parsed YAML value with its location.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Where the value starts.
    pub loc: Loc,
    pub value: Value,
}

/// The value of a [`Node`].
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `~`, `null` or nothing.
    Null,
    /// `true` / `false` (strict YAML 1.2 spellings only).
    Bool(bool),
    Int(i64),
    Float(f64),
    /// A string. `text_only` marks strings whose type is not fixed by the source
    /// (environment variables), which may be read as numbers or booleans.
    Str {
        text: String,
        /// True when the string may be coerced to a number or boolean.
        text_only: bool,
    },
    Seq(Vec<Node>),
    /// A mapping, in document order. Keys are nodes so that they keep their location.
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// A string node that came from outside a YAML file (an environment variable).
    pub fn env_text(name: &str, text: &str) -> Self {
        Node {
            loc: Loc::Env(name.to_string()),
            value: Value::Str {
                text: text.to_string(),
                text_only: true,
            },
        }
    }

    /// The string, if this is a string node.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str { text, .. } => Some(text),
            _ => None,
        }
    }

    /// The entry of a mapping with this key, if this is a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entries()
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    /// The mapping's entries, empty for anything that is not a mapping.
    pub fn entries(&self) -> &[(Node, Node)] {
        match &self.value {
            Value::Map(entries) => entries,
            _ => &[],
        }
    }

    /// The sequence's items, empty for anything that is not a sequence.
    pub fn items(&self) -> &[Node] {
        match &self.value {
            Value::Seq(items) => items,
            _ => &[],
        }
    }

    /// Visits every string scalar below this node (mapping keys excluded).
    pub fn walk_strings<'a>(&'a self, f: &mut dyn FnMut(&'a Node, &'a str)) {
        match &self.value {
            Value::Str { text, .. } => f(self, text),
            Value::Seq(items) => items.iter().for_each(|n| n.walk_strings(f)),
            Value::Map(entries) => entries.iter().for_each(|(_, v)| v.walk_strings(f)),
            _ => {}
        }
    }

    /// A short description of the kind of value, for "found ..." messages.
    pub fn describe(&self) -> String {
        match &self.value {
            Value::Null => "null".into(),
            Value::Bool(b) => format!("boolean `{b}`"),
            Value::Int(i) => format!("integer `{i}`"),
            Value::Float(f) => format!("number `{f}`"),
            Value::Str { text, .. } => format!("string `{}`", truncate(text, 60)),
            Value::Seq(_) => "a list".into(),
            Value::Map(_) => "a mapping".into(),
        }
    }

    /// Converts to JSON (mapping keys become strings).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Str { text, .. } => J::String(text.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.key_text(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// The text of a scalar used as a mapping key.
    pub fn key_text(&self) -> String {
        match &self.value {
            Value::Str { text, .. } => text.clone(),
            Value::Int(i) => i.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Float(f) => f.to_string(),
            Value::Null => "null".into(),
            Value::Seq(_) | Value::Map(_) => self.describe(),
        }
    }
}

pub(crate) fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let cut: String = text.chars().take(max).collect();
        format!("{cut}...")
    }
}

/// One problem found in a file, with its place and, where possible, a fix.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    /// The file the problem is in.
    pub file: PathBuf,
    /// Where in the file (or which environment variable).
    #[serde(flatten, serialize_with = "serialize_loc")]
    pub loc: Loc,
    /// The step the problem belongs to, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// What is wrong, lowercase, naming the value found and what was expected.
    pub message: String,
}

fn serialize_loc<S: serde::Serializer>(loc: &Loc, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = s.serialize_map(None)?;
    match loc {
        Loc::At { line, column } => {
            map.serialize_entry("line", line)?;
            map.serialize_entry("column", column)?;
        }
        Loc::Env(name) => map.serialize_entry("env", name)?,
        Loc::Unknown => {}
    }
    map.end()
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.loc {
            Loc::At { line, column } => write!(f, "{}:{line}:{column}: ", self.file.display())?,
            Loc::Env(name) => write!(f, "{}: environment variable {name}: ", self.file.display())?,
            Loc::Unknown => write!(f, "{}: ", self.file.display())?,
        }
        if let Some(step) = &self.step {
            write!(f, "step `{step}`: ")?;
        }
        f.write_str(&self.message)
    }
}

/// The place one file's problems are collected, in the order they are found.
#[derive(Debug)]
pub struct Sink {
    file: PathBuf,
    step: RefCell<Option<String>>,
    diagnostics: RefCell<Vec<Diagnostic>>,
}

impl Sink {
    /// An empty sink for the given file.
    pub fn new(file: impl AsRef<Path>) -> Self {
        Sink {
            file: file.as_ref().to_path_buf(),
            step: RefCell::new(None),
            diagnostics: RefCell::new(Vec::new()),
        }
    }

    /// The file this sink collects for.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Records a problem at `loc`, attributed to the current step, if any.
    pub fn error(&self, loc: &Loc, message: impl Into<String>) {
        let diagnostic = Diagnostic {
            file: self.file.clone(),
            loc: loc.clone(),
            step: self.step.borrow().clone(),
            message: message.into(),
        };
        self.diagnostics.borrow_mut().push(diagnostic);
    }

    /// Runs `f` with problems attributed to step `id`.
    pub fn in_step<T>(&self, id: Option<&str>, f: impl FnOnce() -> T) -> T {
        let previous = self.step.replace(id.map(str::to_string));
        let out = f();
        self.step.replace(previous);
        out
    }

    /// Attributes problems recorded without a step to the step whose lines
    /// contain them. `sections` are the first lines of the step entries and of
    /// everything else that can follow a step, with the step id for step entries.
    pub fn attribute_steps(&self, sections: &[(u64, Option<String>)]) {
        for d in self.diagnostics.borrow_mut().iter_mut() {
            let Some(line) = d.loc.line() else { continue };
            if d.step.is_some() {
                continue;
            }
            d.step = sections
                .iter()
                .filter(|(start, _)| *start <= line)
                .max_by_key(|(start, _)| *start)
                .and_then(|(_, id)| id.clone());
        }
    }

    /// True when no problem was recorded.
    pub fn is_clean(&self) -> bool {
        self.diagnostics.borrow().is_empty()
    }

    /// The problems, sorted by position (stable for equal positions).
    pub fn into_diagnostics(self) -> Vec<Diagnostic> {
        let mut out = self.diagnostics.into_inner();
        out.sort_by_key(|d| (d.loc.line().unwrap_or(0), d.loc.column().unwrap_or(0)));
        out
    }
}

/// Parses YAML text into a located tree. Syntax errors and duplicate keys stop
/// parsing (a broken document has no reliable structure to check further).
pub fn parse(text: &str, file: &Path) -> Result<Node, Diagnostic> {
    let options = serde_saphyr::options! {
        strict_booleans: true,
        with_snippet: false,
    };
    match serde_saphyr::from_str_with_options::<YamlNode>(text, options) {
        Ok(node) => Ok(node.0),
        Err(err) => {
            let loc = err
                .location()
                .map_or(Loc::Unknown, |l| Loc::at(l.line(), l.column()));
            Err(Diagnostic {
                file: file.to_path_buf(),
                message: yaml_message(&err, &loc),
                loc,
                step: None,
            })
        }
    }
}

/// The parser's message without its own location suffix, in our style.
fn yaml_message(err: &serde_saphyr::Error, loc: &Loc) -> String {
    let mut msg = err.without_snippet().to_string();
    if let (Some(line), Some(column)) = (loc.line(), loc.column()) {
        let suffix = format!(" at line {line}, column {column}");
        if let Some(stripped) = msg.strip_suffix(&suffix) {
            msg = stripped.to_string();
        }
    }
    if let Some(rest) = msg.strip_prefix("duplicate mapping key: ") {
        let key = rest
            .split(", set DuplicateKeyPolicy")
            .next()
            .unwrap_or(rest);
        return format!("duplicate key `{key}`: each key may appear once in a mapping");
    }
    format!("invalid YAML: {msg}")
}

/// Deserializes `T` from `node`, recording every problem in `sink`. Returns
/// `None` when the value could not be built at all; a returned value is only
/// trustworthy if the sink is clean.
pub fn from_node<'a, T: Deserialize<'a>>(node: &'a Node, sink: &'a Sink) -> Option<T> {
    match T::deserialize(NodeDeserializer::new(node, sink)) {
        Ok(value) => Some(value),
        Err(err) => {
            err.record(sink, &node.loc);
            None
        }
    }
}

/// The closest of `candidates` to `word`, if it is close enough to be a likely typo.
pub fn did_you_mean<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// `, did you mean `x`?` or nothing.
pub fn suggestion<'c>(word: &str, candidates: impl IntoIterator<Item = &'c str>) -> String {
    did_you_mean(word, candidates)
        .map(|c| format!(", did you mean `{c}`?"))
        .unwrap_or_default()
}

/// A `serde-saphyr` value wrapped with its span: the bridge from the YAML parser
/// into [`Node`].
struct YamlNode(Node);

impl<'de> Deserialize<'de> for YamlNode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let spanned: serde_saphyr::Spanned<YamlValue> = Deserialize::deserialize(d)?;
        let loc = Loc::at(spanned.referenced.line(), spanned.referenced.column());
        Ok(YamlNode(Node {
            loc,
            value: spanned.value.0,
        }))
    }
}

struct YamlValue(Value);

impl<'de> Deserialize<'de> for YamlValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(YamlVisitor).map(YamlValue)
    }
}

struct YamlVisitor;

impl<'de> Visitor<'de> for YamlVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Value, E> {
        i64::try_from(v)
            .map(Value::Int)
            .map_err(|_| E::custom(format!("integer {v} is too large")))
    }
    fn visit_i128<E: serde::de::Error>(self, v: i128) -> Result<Value, E> {
        i64::try_from(v)
            .map(Value::Int)
            .map_err(|_| E::custom(format!("integer {v} is too large")))
    }
    fn visit_u128<E: serde::de::Error>(self, v: u128) -> Result<Value, E> {
        i64::try_from(v)
            .map(Value::Int)
            .map_err(|_| E::custom(format!("integer {v} is too large")))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str {
            text: v.to_string(),
            text_only: false,
        })
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str {
            text: v,
            text_only: false,
        })
    }
    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Value, E> {
        String::from_utf8(v.to_vec())
            .map(|text| Value::Str {
                text,
                text_only: false,
            })
            .map_err(|_| E::custom("binary values are not supported"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<YamlNode>()? {
            items.push(item.0);
        }
        Ok(Value::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<YamlNode>()? {
            let value = map.next_value::<YamlNode>()?;
            entries.push((key.0, value.0));
        }
        Ok(Value::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<Node, Diagnostic> {
        parse(text, Path::new("t.yaml"))
    }

    #[test]
    fn keeps_locations_of_keys_and_values() {
        let node = p("a: 1\nb:\n  - x\n").unwrap();
        let (k, v) = &node.entries()[1];
        assert_eq!(k.loc, Loc::at(2, 1), "key location");
        assert_eq!(v.items()[0].loc, Loc::at(3, 5), "item location");
    }

    #[test]
    fn strict_booleans_keep_yes_as_text() {
        let node = p("a: yes\nb: true\n").unwrap();
        assert_eq!(node.get("a").unwrap().as_str(), Some("yes"));
        assert_eq!(node.get("b").unwrap().value, Value::Bool(true));
    }

    #[test]
    fn duplicate_key_is_an_error_at_the_second_key() {
        let err = p("a: 1\na: 2\n").unwrap_err();
        assert_eq!(err.loc, Loc::at(2, 1));
        assert!(err.message.contains("duplicate key `a`"), "{}", err.message);
    }

    #[test]
    fn syntax_error_names_the_place() {
        let err = p("a: [1,\n").unwrap_err();
        assert_eq!(err.loc, Loc::at(1, 4));
        assert!(
            err.message.starts_with("invalid YAML: unclosed bracket"),
            "{}",
            err.message
        );
    }

    #[test]
    fn suggestions_only_for_close_words() {
        assert_eq!(did_you_mean("stpes", ["steps", "params"]), Some("steps"));
        assert_eq!(did_you_mean("zzz", ["steps", "params"]), None);
    }
}
