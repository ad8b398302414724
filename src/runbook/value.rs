//! Typed values that may also be templates, and expectations built from them.
//!
//! A `with` field of a known type (`priority_station: target`, a status) is
//! checked when the runbook loads if it is a literal, and after rendering if it
//! is a template (`priority_station: "{{ params.to }}"`), with the same
//! message either way. An expectation is a value, a list of accepted values,
//! or `{ not: ... }` for the values it must not have; `not` with a template
//! reading an earlier step is how a switchover verifies that production
//! really moved (`priority_station: { not: "{{ steps.precheck.output.priority_station }}" }`).

use std::fmt;
use std::time::Duration;

use schemars::JsonSchema;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::template;

/// A value of type `T`, or a template that renders to one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Templated<T> {
    /// Written out (checked at load).
    Literal(T),
    /// A template, checked after rendering.
    Template(String),
}

/// Reads `text` as a `T` the way the runbook file would spell it: a
/// rendered `"2"` is a number where a number is expected.
pub fn parse_as<'de, T: Deserialize<'de>>(text: &'de str) -> Result<T, String> {
    use de::value::{BoolDeserializer, Error, StrDeserializer, U64Deserializer};
    let as_text = T::deserialize(StrDeserializer::<Error>::new(text));
    let Err(first) = as_text else {
        return as_text.map_err(|e| e.to_string());
    };
    if let Ok(n) = text.parse::<u64>() {
        return T::deserialize(U64Deserializer::<Error>::new(n)).map_err(|e| e.to_string());
    }
    if let Ok(b) = text.parse::<bool>() {
        return T::deserialize(BoolDeserializer::<Error>::new(b)).map_err(|e| e.to_string());
    }
    Err(first.to_string())
}

impl<T> Templated<T>
where
    T: for<'de> Deserialize<'de> + Clone,
{
    /// The value, rendering a template with `render` first.
    pub fn resolve(&self, render: impl Fn(&str) -> Result<String, String>) -> Result<T, String> {
        match self {
            Templated::Literal(v) => Ok(v.clone()),
            Templated::Template(source) => {
                let text = render(source)?;
                let text = text.trim();
                parse_as::<T>(text).map_err(|e| format!("`{source}` rendered `{text}`: {e}"))
            }
        }
    }

    /// The literal, if this is one.
    pub fn literal(&self) -> Option<&T> {
        match self {
            Templated::Literal(v) => Some(v),
            Templated::Template(_) => None,
        }
    }
}

impl<T: fmt::Display> fmt::Display for Templated<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Templated::Literal(v) => v.fmt(f),
            Templated::Template(t) => f.write_str(t),
        }
    }
}

/// Reads a [`Templated`]. A list item (`scalar`) is one value, never a
/// nested list, and a number or boolean there is read as its text, as the
/// other items of an expectation are.
struct TemplatedVisitor<T> {
    scalar: bool,
    _t: std::marker::PhantomData<T>,
}

impl<T> TemplatedVisitor<T> {
    fn new(scalar: bool) -> Self {
        TemplatedVisitor {
            scalar,
            _t: std::marker::PhantomData,
        }
    }
}

impl<'de, T: Deserialize<'de>> TemplatedVisitor<T> {
    /// A number or boolean: as text in a list, else as itself.
    fn other<E: de::Error, D: Deserializer<'de, Error = E>>(
        self,
        text: String,
        direct: D,
    ) -> Result<Templated<T>, E> {
        if self.scalar {
            self.visit_str(&text)
        } else {
            T::deserialize(direct).map(Templated::Literal)
        }
    }
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for TemplatedVisitor<T> {
    type Value = Templated<T>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value or a template")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        if template::is_template(v) {
            return Ok(Templated::Template(v.to_string()));
        }
        T::deserialize(de::value::StrDeserializer::<E>::new(v)).map(Templated::Literal)
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        self.visit_str(&v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        self.other(v.to_string(), de::value::I64Deserializer::<E>::new(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        self.other(v.to_string(), de::value::U64Deserializer::<E>::new(v))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        self.other(v.to_string(), de::value::BoolDeserializer::<E>::new(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        if self.scalar {
            return Err(de::Error::invalid_type(de::Unexpected::Seq, &self));
        }
        T::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(Templated::Literal)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Templated<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TemplatedVisitor::new(false))
    }
}

impl<T: Serialize> Serialize for Templated<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Templated::Literal(v) => v.serialize(s),
            Templated::Template(t) => s.serialize_str(t),
        }
    }
}

impl<T: JsonSchema> JsonSchema for Templated<T> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        format!("Templated_{}", T::schema_name()).into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let one = generator.subschema_for::<T>();
        schemars::json_schema!({
            "anyOf": [one, { "type": "string", "pattern": "\\{[{%]", "description": "a template rendering to the value" }]
        })
    }
}

/// Whether an expectation lists accepted or refused values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sense {
    /// The field must be one of the values.
    Is,
    /// The field must be none of the values.
    IsNot,
}

/// An expected field: `value`, `[a, b]`, or `{ not: value }` / `{ not: [a, b] }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect<T> {
    /// Accepted or refused.
    pub sense: Sense,
    pub values: Vec<Templated<T>>,
}

impl<T> Expect<T>
where
    T: for<'de> Deserialize<'de> + Clone + fmt::Display,
{
    /// The literal values of an `Is` expectation (what load-time checks can see).
    pub fn accepted_literals(&self) -> impl Iterator<Item = &T> {
        self.values
            .iter()
            .filter(move |_| self.sense == Sense::Is)
            .filter_map(Templated::literal)
    }

    /// Checks the field's wire value `got` (`None`: null); `Some(problem)` if it does not match.
    pub fn mismatch(
        &self,
        field: &str,
        got: Option<&str>,
        render: impl Fn(&str) -> Result<String, String>,
    ) -> Result<Option<String>, String> {
        let wanted = self
            .values
            .iter()
            .map(|v| v.resolve(&render).map(|t| t.to_string()))
            .collect::<Result<Vec<String>, String>>()
            .map_err(|e| format!("`{field}`: {e}"))?;
        let listed = got.is_some_and(|g| wanted.iter().any(|w| w == g));
        let shown = got.unwrap_or("null");
        Ok(match self.sense {
            Sense::Is if !listed => Some(format!(
                "{field} is {shown}, expected {}",
                wanted.join(" or ")
            )),
            // A null is never "another" value: it says nothing about where production is.
            Sense::IsNot if listed || got.is_none() => Some(format!(
                "{field} is {shown}, expected anything but {}",
                wanted.join(" or ")
            )),
            _ => None,
        })
    }
}

/// An [`Expect`] of any value type, as the checks of a resource list them.
pub trait FieldCheck {
    /// See [`Expect::mismatch`].
    fn check(
        &self,
        field: &str,
        got: Option<&str>,
        render: &dyn Fn(&str) -> Result<String, String>,
    ) -> Result<Option<String>, String>;
}

impl<T> FieldCheck for Expect<T>
where
    T: for<'de> Deserialize<'de> + Clone + fmt::Display,
{
    fn check(
        &self,
        field: &str,
        got: Option<&str>,
        render: &dyn Fn(&str) -> Result<String, String>,
    ) -> Result<Option<String>, String> {
        self.mismatch(field, got, render)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Expect<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> V<T> {
            fn one<E: de::Error>(v: Templated<T>) -> Result<Expect<T>, E> {
                Ok(Expect {
                    sense: Sense::Is,
                    values: vec![v],
                })
            }
        }
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Expect<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a value, a list of values, or `{ not: ... }`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Self::one(Templated::deserialize(
                    de::value::StrDeserializer::<E>::new(v),
                )?)
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                self.visit_str(&v)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut values = Vec::new();
                while let Some(item) = seq.next_element::<ScalarTemplated<T>>()? {
                    values.push(item.0);
                }
                if values.is_empty() {
                    return Err(de::Error::custom(
                        "expected at least one value, found an empty list",
                    ));
                }
                Ok(Expect {
                    sense: Sense::Is,
                    values,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out: Option<Expect<T>> = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key != "not" {
                        return Err(de::Error::custom(format!(
                            "unknown key `{key}`; an expectation is a value, a list, or `{{ not: ... }}`"
                        )));
                    }
                    let inner: Expect<T> = map.next_value()?;
                    if inner.sense == Sense::IsNot {
                        return Err(de::Error::custom("`not` cannot be nested"));
                    }
                    out = Some(Expect {
                        sense: Sense::IsNot,
                        values: inner.values,
                    });
                }
                out.ok_or_else(|| de::Error::custom("expected `{ not: ... }`, found an empty map"))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// A list item: a scalar value or a template (never a nested list).
struct ScalarTemplated<T>(Templated<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for ScalarTemplated<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TemplatedVisitor::new(true))
            .map(ScalarTemplated)
    }
}

impl<T: JsonSchema> JsonSchema for Expect<T> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        format!("Expect_{}", T::schema_name()).into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let one = generator.subschema_for::<Templated<T>>();
        let some = schemars::json_schema!({
            "anyOf": [one, { "type": "array", "items": one, "minItems": 1 }]
        });
        schemars::json_schema!({
            "anyOf": [
                some,
                { "type": "object", "properties": { "not": some }, "required": ["not"], "additionalProperties": false }
            ]
        })
    }
}

// ---- durations -------------------------------------------------------------

/// A duration written without templates: `500ms`, `10s`, `5m`, `2h`, `1h30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[schemars(with = "String")]
pub struct FixedDuration(#[serde(with = "duration_text")] pub Duration);

impl<'de> Deserialize<'de> for FixedDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        if text.contains("{{") {
            return Err(de::Error::custom(format!(
                "templates are not allowed here, found `{text}`; write a fixed duration such as `10s`"
            )));
        }
        parse_duration(&text)
            .map(FixedDuration)
            .map_err(de::Error::custom)
    }
}

/// A runbook's `rto`: a fixed duration longer than zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[schemars(with = "String")]
pub struct Rto(#[serde(with = "duration_text")] pub Duration);

impl<'de> Deserialize<'de> for Rto {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match FixedDuration::deserialize(d)? {
            FixedDuration(d) if d.is_zero() => Err(de::Error::custom(
                "rto must be longer than zero, such as `15m`",
            )),
            FixedDuration(d) => Ok(Rto(d)),
        }
    }
}

mod duration_text {
    use std::time::Duration;
    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_duration(*d))
    }
}

/// A duration that may instead be a template rendered when the step runs.
#[derive(Debug, Clone, PartialEq, Eq, JsonSchema)]
#[schemars(with = "String")]
pub enum DurationSpec {
    /// Known at load time.
    Fixed(Duration),
    /// A template, e.g. `{{ params.verify_timeout }}`; rendered, then parsed.
    Template(String),
}

impl<'de> Deserialize<'de> for DurationSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        if text.contains("{{") {
            return Ok(DurationSpec::Template(text));
        }
        parse_duration(&text)
            .map(DurationSpec::Fixed)
            .map_err(de::Error::custom)
    }
}

/// Parses `500ms`, `10s`, `5m`, `2h`, or a sequence such as `1h30m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "invalid duration `{text}`: expected a number and a unit (ms, s, m, h), such as `500ms`, `10s`, `5m` or `2h`"
        )
    };
    let s = text.trim();
    if s.is_empty() {
        return Err(bad());
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(bad());
        }
        let number: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let part = match unit {
            "ms" => Duration::from_millis(number),
            "s" => Duration::from_secs(number),
            "m" => Duration::from_secs(number.saturating_mul(60)),
            "h" => Duration::from_secs(number.saturating_mul(3600)),
            _ => return Err(bad()),
        };
        total = total.saturating_add(part);
    }
    if total > MAX_DURATION_TEXT {
        return Err(format!(
            "duration `{text}` is longer than the {} any duration may be",
            format_duration(MAX_DURATION_TEXT)
        ));
    }
    Ok(total)
}

/// The longest duration any runbook or config text may name (a week); the
/// engine's own `engine.max_duration` bounds rendered values further.
pub const MAX_DURATION_TEXT: Duration = Duration::from_secs(7 * 24 * 3600);

/// Formats a duration the way runbooks write it (`1h30m`, `500ms`).
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    if !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let mut secs = ms / 1000;
    let mut out = String::new();
    for (unit, size) in [("h", 3600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runbook::model::EvsStatus;

    fn expect(yaml: &str) -> Result<Expect<EvsStatus>, String> {
        serde_saphyr::from_str::<Expect<EvsStatus>>(yaml).map_err(|e| e.to_string())
    }

    fn no_render(t: &str) -> Result<String, String> {
        Err(format!("no render of {t}"))
    }

    #[test]
    fn expectations_read_every_form() {
        let cases: &[(&str, Sense, usize)] = &[
            ("available", Sense::Is, 1),
            ("[available, reversing]", Sense::Is, 2),
            ("{ not: available }", Sense::IsNot, 1),
            ("{ not: [available, error] }", Sense::IsNot, 2),
            ("\"{{ params.s }}\"", Sense::Is, 1),
            ("{ not: \"{{ steps.a.output.status }}\" }", Sense::IsNot, 1),
        ];
        for (text, sense, n) in cases {
            let e = expect(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!((e.sense, e.values.len()), (*sense, *n), "{text}");
        }
        for bad in [
            "availible",
            "[]",
            "{ nott: available }",
            "{ not: { not: available } }",
        ] {
            assert!(expect(bad).is_err(), "{bad} is refused");
        }
    }

    #[test]
    fn is_and_is_not_match_as_they_say() {
        let is = expect("[available, reversing]").unwrap();
        assert_eq!(
            is.mismatch("status", Some("available"), no_render),
            Ok(None)
        );
        assert_eq!(
            is.mismatch("status", Some("error"), no_render),
            Ok(Some(
                "status is error, expected available or reversing".into()
            ))
        );
        let not = expect("{ not: available }").unwrap();
        assert_eq!(not.mismatch("status", Some("error"), no_render), Ok(None));
        assert!(
            not.mismatch("status", Some("available"), no_render)
                .unwrap()
                .is_some()
        );
        assert!(
            not.mismatch("status", None, no_render).unwrap().is_some(),
            "null is never accepted as different"
        );
    }

    #[test]
    fn templates_resolve_after_rendering_with_the_literal_message() {
        let e = expect("{ not: \"{{ x }}\" }").unwrap();
        let render = |_: &str| Ok("available".to_string());
        assert!(
            e.mismatch("status", Some("available"), render)
                .unwrap()
                .is_some()
        );
        let bad = |_: &str| Ok("availible".to_string());
        let why = e.mismatch("status", Some("error"), bad).unwrap_err();
        assert!(
            why.contains("`status`: `{{ x }}` rendered `availible`: unknown variant"),
            "{why}"
        );
    }
}
