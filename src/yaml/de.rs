//! The serde deserializer over a [`Node`] tree.
//!
//! Every error is recorded in the [`Sink`] at the innermost node it concerns and
//! then travels up as [`Error::Recorded`], so a parent never records it twice.
//! A mapping read into a struct reports all of its unknown keys before any field
//! is read, and a [`Checked`] field or list item fails alone, so the struct or
//! list around it goes on: one run finds (nearly) every problem of a file.

use std::fmt;

use serde::de::{
    self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Unexpected,
    Visitor,
};

use super::{Loc, Node, Sink, Value, suggestion};

/// The newtype name by which [`Located`] asks this deserializer for a location.
const LOCATED: &str = "__drover_located";
/// The text of [`Error::Recorded`], so wrappers can recognise it through any error type.
const RECORDED: &str = "__drover_error_already_recorded";

/// A deserialization error. Once recorded in a sink it becomes [`Error::Recorded`].
#[derive(Debug)]
pub enum Error {
    /// Already in the sink; parents only pass it on.
    Recorded,
    /// Not yet recorded.
    Message {
        /// Where, if known yet (the innermost node fills it in).
        loc: Option<Loc>,
        /// What went wrong.
        message: String,
    },
}

impl Error {
    fn at(loc: &Loc, message: impl Into<String>) -> Self {
        Error::Message {
            loc: Some(loc.clone()),
            message: message.into(),
        }
    }

    /// Writes the error to `sink` unless it is already there.
    pub(super) fn record(self, sink: &Sink, fallback: &Loc) {
        if let Error::Message { loc, message } = self {
            sink.error(loc.as_ref().unwrap_or(fallback), message);
        }
    }

    /// True for an error that was already written to a sink (seen through any error type).
    pub fn is_recorded(err: &impl fmt::Display) -> bool {
        err.to_string() == RECORDED
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Recorded => f.write_str(RECORDED),
            Error::Message { message, .. } => f.write_str(message),
        }
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        let message = msg.to_string();
        if message == RECORDED {
            return Error::Recorded;
        }
        Error::Message { loc: None, message }
    }

    fn invalid_type(unexp: Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        Self::custom(format_args!(
            "expected {}, found {}",
            expected(exp),
            describe(&unexp)
        ))
    }

    fn invalid_value(unexp: Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        Self::custom(format_args!(
            "expected {}, found {}",
            expected(exp),
            describe(&unexp)
        ))
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        let hint = suggestion(variant, expected.iter().copied());
        if hint.is_empty() {
            Self::custom(format_args!(
                "unknown value `{variant}`; expected one of {}",
                quoted_list(expected)
            ))
        } else {
            Self::custom(format_args!("unknown value `{variant}`{hint}"))
        }
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        Self::custom(unknown_key_message(field, expected))
    }

    fn missing_field(field: &'static str) -> Self {
        Self::custom(format_args!("missing required field `{field}`"))
    }
}

fn describe(unexp: &Unexpected<'_>) -> String {
    match unexp {
        Unexpected::Str(s) => format!("string `{}`", super::truncate(s, 60)),
        Unexpected::Unit => "null".to_string(),
        Unexpected::Map => "a mapping".to_string(),
        Unexpected::Seq => "a list".to_string(),
        Unexpected::Signed(i) => format!("integer `{i}`"),
        Unexpected::Unsigned(i) => format!("integer `{i}`"),
        Unexpected::Float(f) => format!("number `{f}`"),
        Unexpected::Bool(b) => format!("boolean `{b}`"),
        other => other.to_string(),
    }
}

/// serde names Rust types ("u32"); say what a runbook author would write.
fn expected(exp: &dyn de::Expected) -> String {
    let text = exp.to_string();
    match text.as_str() {
        "u8" | "u16" | "u32" | "u64" => "a whole number (0 or more)".into(),
        "i8" | "i16" | "i32" | "i64" => "a whole number".into(),
        "f32" | "f64" => "a number".into(),
        "a string" | "a borrowed string" => "text".into(),
        _ if text.starts_with("struct ") => "a mapping".into(),
        _ if text.starts_with("a sequence") => "a list".into(),
        _ => text,
    }
}

/// `` `a`, `b`, `c` ``
pub(crate) fn quoted_list(items: &[&str]) -> String {
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn unknown_key_message(key: &str, expected: &[&str]) -> String {
    let hint = suggestion(key, expected.iter().copied());
    if hint.is_empty() {
        format!(
            "unknown key `{key}`; expected one of {}",
            quoted_list(expected)
        )
    } else {
        format!("unknown key `{key}`{hint}")
    }
}

/// A value together with where it was written, for errors found after
/// deserialization (a bad duration, an unknown step reference).
#[derive(Debug, Clone, PartialEq)]
pub struct Located<T> {
    pub value: T,
    /// Where it was written.
    pub loc: Loc,
}

impl<T> Located<T> {
    /// A value with a known place.
    pub fn new(value: T, loc: Loc) -> Self {
        Located { value, loc }
    }
}

/// A wrapper whose JSON Schema is that of the value it wraps.
macro_rules! transparent_schema {
    ($wrapper:ident) => {
        impl<T: schemars::JsonSchema> schemars::JsonSchema for $wrapper<T> {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                T::schema_name()
            }
            fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
                T::json_schema(generator)
            }
            fn inline_schema() -> bool {
                T::inline_schema()
            }
        }
    };
}

transparent_schema!(Located);

impl<'de, T: de::Deserialize<'de>> de::Deserialize<'de> for Located<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct LocatedVisitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: de::Deserialize<'de>> Visitor<'de> for LocatedVisitor<T> {
            type Value = Located<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a located value")
            }
            // The node deserializer hands over (location, value).
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let loc: String = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::custom("missing location"))?;
                let value = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::custom("missing value"))?;
                Ok(Located {
                    value,
                    loc: decode_loc(&loc),
                })
            }
            // Any other deserializer: no location to give.
            fn visit_newtype_struct<D: Deserializer<'de>>(
                self,
                d: D,
            ) -> Result<Self::Value, D::Error> {
                Ok(Located {
                    value: T::deserialize(d)?,
                    loc: Loc::Unknown,
                })
            }
        }
        d.deserialize_newtype_struct(LOCATED, LocatedVisitor(std::marker::PhantomData))
    }
}

fn encode_loc(loc: &Loc) -> String {
    match loc {
        Loc::At { line, column } => format!("{line}:{column}"),
        Loc::Env(name) => format!("env:{name}"),
        Loc::Unknown => String::new(),
    }
}

fn decode_loc(text: &str) -> Loc {
    if let Some(name) = text.strip_prefix("env:") {
        return Loc::Env(name.to_string());
    }
    match text.split_once(':') {
        Some((l, c)) => Loc::at(l.parse().unwrap_or(0), c.parse().unwrap_or(0)),
        None => Loc::Unknown,
    }
}

/// A field that may fail on its own without failing the struct around it: its
/// error is already in the sink, and the struct goes on to check its other fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked<T>(pub Option<T>);

impl<T> Default for Checked<T> {
    fn default() -> Self {
        Checked(None)
    }
}

impl<'de, T: de::Deserialize<'de>> de::Deserialize<'de> for Checked<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match T::deserialize(d) {
            Ok(v) => Ok(Checked(Some(v))),
            Err(e) if Error::is_recorded(&e) => Ok(Checked(None)),
            Err(e) => Err(e),
        }
    }
}

transparent_schema!(Checked);

/// Deserializes from one [`Node`], recording errors in a [`Sink`].
#[derive(Clone, Copy)]
pub struct NodeDeserializer<'a> {
    node: &'a Node,
    sink: &'a Sink,
}

impl<'a> NodeDeserializer<'a> {
    /// A deserializer for `node` that records into `sink`.
    pub fn new(node: &'a Node, sink: &'a Sink) -> Self {
        NodeDeserializer { node, sink }
    }

    fn child(&self, node: &'a Node) -> Self {
        NodeDeserializer {
            node,
            sink: self.sink,
        }
    }

    /// Records a fresh error at this node and turns it into `Recorded`.
    fn settle<T>(&self, result: Result<T, Error>) -> Result<T, Error> {
        result.map_err(|e| {
            e.record(self.sink, &self.node.loc);
            Error::Recorded
        })
    }

    fn any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        let result = match &self.node.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Int(i) => visitor.visit_i64(*i),
            Value::Float(f) => visitor.visit_f64(*f),
            Value::Str { text, .. } => visitor.visit_borrowed_str(text),
            Value::Seq(items) => visitor.visit_seq(Items {
                de: self,
                items: items.iter(),
            }),
            Value::Map(entries) => visitor.visit_map(Entries {
                de: self,
                entries: entries.iter().collect::<Vec<_>>().into_iter(),
                value: None,
            }),
        };
        self.settle(result)
    }

    /// Text from an environment variable has no YAML type: read it as the target asks.
    fn coerced<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        let Value::Str {
            text,
            text_only: true,
        } = &self.node.value
        else {
            return self.any(visitor);
        };
        let t = text.trim();
        let result = if let Ok(b) = t.parse::<bool>() {
            visitor.visit_bool(b)
        } else if let Ok(i) = t.parse::<i64>() {
            visitor.visit_i64(i)
        } else if let Ok(f) = t.parse::<f64>() {
            visitor.visit_f64(f)
        } else {
            visitor.visit_borrowed_str(text)
        };
        self.settle(result)
    }
}

impl<'a> Deserializer<'a> for NodeDeserializer<'a> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        self.any(visitor)
    }

    fn deserialize_bool<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        self.coerced(visitor)
    }
    fn deserialize_i8<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        self.coerced(visitor)
    }
    fn deserialize_i16<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        self.coerced(visitor)
    }
    fn deserialize_i32<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        self.coerced(visitor)
    }
    fn deserialize_i64<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        self.coerced(visitor)
    }
    fn deserialize_u8<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        self.coerced(visitor)
    }
    fn deserialize_u16<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        self.coerced(visitor)
    }
    fn deserialize_u32<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        self.coerced(visitor)
    }
    fn deserialize_u64<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        self.coerced(visitor)
    }
    fn deserialize_f32<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        self.coerced(visitor)
    }
    fn deserialize_f64<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        self.coerced(visitor)
    }

    fn deserialize_str<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_string(visitor)
    }

    // A plain scalar written where text is expected (`fault_level: 0`) is that text.
    fn deserialize_string<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        let result = match &self.node.value {
            Value::Bool(b) => visitor.visit_string(b.to_string()),
            Value::Int(i) => visitor.visit_string(i.to_string()),
            Value::Float(f) => visitor.visit_string(f.to_string()),
            _ => return self.any(visitor),
        };
        self.settle(result)
    }

    fn deserialize_option<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        let result = match &self.node.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        };
        self.settle(result)
    }

    fn deserialize_newtype_struct<V: Visitor<'a>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        let result = if name == LOCATED {
            visitor.visit_seq(LocatedParts { de: self, step: 0 })
        } else {
            visitor.visit_newtype_struct(self)
        };
        self.settle(result)
    }

    fn deserialize_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let Value::Map(entries) = &self.node.value else {
            return self.settle(Err(Error::at(
                &self.node.loc,
                format!("expected a mapping, found {}", self.node.describe()),
            )));
        };
        // Every unknown key is reported now, before any field can fail.
        let mut known = Vec::with_capacity(entries.len());
        for entry in entries {
            let key = entry.0.key_text();
            if fields.contains(&key.as_str()) {
                known.push(entry);
            } else {
                self.sink
                    .error(&entry.0.loc, unknown_key_message(&key, fields));
            }
        }
        let result = visitor.visit_map(Entries {
            de: self,
            entries: known.into_iter(),
            value: None,
        });
        self.settle(result)
    }

    fn deserialize_enum<V: Visitor<'a>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let result = match &self.node.value {
            Value::Str { text, .. } => {
                visitor.visit_enum(IntoDeserializer::<Error>::into_deserializer(text.as_str()))
            }
            // `fault_level: 0` means the value "0".
            Value::Int(_) | Value::Bool(_) => visitor.visit_enum(
                IntoDeserializer::<Error>::into_deserializer(self.node.key_text()),
            ),
            _ => Err(Error::at(
                &self.node.loc,
                format!(
                    "expected one of {}, found {}",
                    quoted_list(variants),
                    self.node.describe()
                ),
            )),
        };
        self.settle(result)
    }

    fn deserialize_ignored_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        <W: Visitor<'a>>
        char bytes byte_buf unit unit_struct seq tuple tuple_struct map identifier i128 u128
    }
}

/// Hands a [`Located`] its location, then its value.
struct LocatedParts<'a> {
    de: NodeDeserializer<'a>,
    step: u8,
}

impl<'a> SeqAccess<'a> for LocatedParts<'a> {
    type Error = Error;

    fn next_element_seed<S: DeserializeSeed<'a>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, Error> {
        self.step += 1;
        match self.step {
            1 => seed
                .deserialize(encode_loc(&self.de.node.loc).into_deserializer())
                .map(Some),
            2 => seed.deserialize(self.de).map(Some),
            _ => Ok(None),
        }
    }
}

struct Items<'a> {
    de: NodeDeserializer<'a>,
    items: std::slice::Iter<'a, Node>,
}

impl<'a> SeqAccess<'a> for Items<'a> {
    type Error = Error;

    fn next_element_seed<S: DeserializeSeed<'a>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, Error> {
        match self.items.next() {
            Some(item) => seed.deserialize(self.de.child(item)).map(Some),
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct Entries<'a> {
    de: NodeDeserializer<'a>,
    entries: std::vec::IntoIter<&'a (Node, Node)>,
    value: Option<&'a Node>,
}

impl<'a> MapAccess<'a> for Entries<'a> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'a>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        self.value = Some(value);
        seed.deserialize(self.de.child(key)).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'a>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let value = self
            .value
            .take()
            .ok_or_else(|| Error::at(&self.de.node.loc, "value without key"))?;
        seed.deserialize(self.de.child(value))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}
