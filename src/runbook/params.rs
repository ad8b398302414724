//! Run parameters as the API takes them: the JSON value given for each
//! declared parameter becomes the text a run records, and the JSON Schema of a
//! runbook's `params` says exactly which values that takes, so a client can
//! check a request before it sends one.
//!
//! The rules are the ones [`super::resolve_params`] and the start of a run
//! apply, made exact: no value the schema allows is refused at start, and the
//! API refuses what the schema does not allow.

use serde_json::{Map, Value, json};

use super::model::{IdField, parse_duration, words};
use super::{MAX_PARAM_CHARS, Param, ParamType, Runbook};
use crate::cloud::id;

/// The largest magnitude of an `integer` parameter (18 digits).
pub const MAX_INTEGER: i64 = 999_999_999_999_999_999;
/// An `integer` given as text.
const INTEGER_PATTERN: &str = "^[+-]?[0-9]{1,18}$";
/// A `duration` as the API takes it: one number and unit, at most a week
/// (the bound every duration text has).
const DURATION_PATTERN: &str =
    "^([0-9]{1,8}ms|[0-9]{1,5}s|[0-9]{1,4}m|([0-9]{1,2}|1[0-5][0-9]|16[0-8])h)$";

/// Why a value was refused: the wrong JSON type (400) or a value of the right
/// type that the parameter does not take (422).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueError {
    Type(String),
    Value(String),
}

/// The text recorded for `value`, given in a run request for `param` of
/// `runbook`.
pub fn from_json(runbook: &Runbook, param: &Param, value: &Value) -> Result<String, ValueError> {
    let wrong = |what: &str| {
        ValueError::Value(format!(
            "parameter `{}`: expected {what}, found {}",
            param.name,
            shown(value)
        ))
    };
    match (param.kind, value) {
        (ParamType::String, Value::String(s)) => {
            if s.chars().count() > MAX_PARAM_CHARS {
                return Err(ValueError::Value(format!(
                    "parameter `{}` has {} characters; a value may have at most {MAX_PARAM_CHARS}",
                    param.name,
                    s.chars().count()
                )));
            }
            match id_field(runbook, &param.name) {
                Some(IdField::Vpc) if s.is_empty() => {}
                Some(field) => field
                    .check(s)
                    .map_err(|e| ValueError::Value(format!("parameter `{}`: {e}", param.name)))?,
                None => {}
            }
            Ok(s.clone())
        }
        (ParamType::Integer, Value::Number(n)) => integral(n)
            .filter(|i| i.abs() <= MAX_INTEGER)
            .map(|i| i.to_string())
            .ok_or_else(|| wrong("an integer of at most 18 digits")),
        (ParamType::Integer, Value::String(s)) => {
            let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
            if (1..=18).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
                Ok(s.clone())
            } else {
                Err(wrong("an integer of at most 18 digits"))
            }
        }
        (ParamType::Boolean, Value::Bool(b)) => Ok(b.to_string()),
        (ParamType::Boolean, Value::String(s)) if s == "true" || s == "false" => Ok(s.clone()),
        (ParamType::Boolean, Value::String(_)) => Err(wrong("`true` or `false`")),
        (ParamType::Duration, Value::String(s)) => {
            if duration_form(s) && parse_duration(s).is_ok() {
                Ok(s.clone())
            } else {
                Err(wrong(
                    "one number and unit of at most a week, such as `30s`, `5m` or `2h`",
                ))
            }
        }
        (ParamType::List, Value::Array(items)) => {
            let items: Option<Vec<&str>> = items.iter().map(Value::as_str).collect();
            match items {
                Some(items) => Ok(serde_json::to_string(&items).unwrap_or_default()),
                None => Err(ValueError::Type(format!(
                    "parameter `{}`: a list holds strings only",
                    param.name
                ))),
            }
        }
        // Text is a list of words (`g1, g2`), or a JSON array written as text.
        (ParamType::List, Value::String(s)) => match super::model::parse_list(s) {
            Ok(_) => Ok(s.clone()),
            Err(_) => Ok(serde_json::to_string(&words(s)).unwrap_or_default()),
        },
        (kind, other) => Err(ValueError::Type(format!(
            "parameter `{}` is of type {}: expected {}, found {}",
            param.name,
            kind_name(kind),
            json_types(kind),
            type_of(other)
        ))),
    }
}

/// The JSON Schema of a run request for `runbook`: its name, the `params`
/// object it takes (required ones, each value's type and form, nothing
/// else) and `dry_run`.
pub fn request_schema(runbook: &Runbook) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for param in &runbook.params {
        properties.insert(param.name.clone(), value_schema(runbook, param));
        if param.required && param.default.is_none() {
            required.push(param.name.clone());
        }
    }
    let mut params = json!({
        "type": "object",
        "properties": properties,
        "additionalProperties": false,
    });
    let mut top = vec!["runbook"];
    if !required.is_empty() {
        params["required"] = json!(required);
        top.push("params");
    }
    json!({
        "title": runbook.name,
        "type": "object",
        "properties": {
            "runbook": { "type": "string", "enum": [runbook.name] },
            "params": params,
            "dry_run": { "type": "boolean", "description": "Send no change (only GET/HEAD leave the daemon)." },
        },
        "required": top,
        "additionalProperties": false,
    })
}

/// The schema of one parameter's value.
fn value_schema(runbook: &Runbook, param: &Param) -> Value {
    let mut schema = match param.kind {
        ParamType::String => match id_field(runbook, &param.name) {
            // An id, or empty: the drill then makes its own VPC.
            Some(IdField::Vpc) => json!({ "type": "string", "pattern": "^[A-Za-z0-9-]{0,64}$" }),
            Some(IdField::DrillName) => json!({ "type": "string", "pattern": id::NAME_PATTERN }),
            Some(_) => json!({ "type": "string", "pattern": id::PATTERN }),
            None => json!({ "type": "string", "maxLength": MAX_PARAM_CHARS }),
        },
        ParamType::Integer => json!({
            "type": ["integer", "string"],
            "minimum": -MAX_INTEGER,
            "maximum": MAX_INTEGER,
            "pattern": INTEGER_PATTERN,
        }),
        ParamType::Boolean => json!({ "enum": [true, false, "true", "false"] }),
        ParamType::Duration => json!({ "type": "string", "pattern": DURATION_PATTERN }),
        ParamType::List => json!({ "type": ["array", "string"], "items": { "type": "string" } }),
    };
    if let Some(text) = &param.description {
        schema["description"] = json!(text);
    }
    if let Some(default) = &param.default {
        schema["default"] = json!(default);
    }
    schema
}

/// The id field a parameter is written into as a whole (`{{ params.X }}`),
/// the strictest where there are several; such a value must be an id.
fn id_field(runbook: &Runbook, name: &str) -> Option<IdField> {
    let whole = format!("params.{name}");
    let rank = |f: IdField| match f {
        IdField::Vpc => 0,
        IdField::DrillName => 1,
        _ => 2,
    };
    runbook
        .all_steps()
        .flat_map(|step| step.action.identifiers())
        .filter(|(_, _, value)| {
            let text = value.value.trim();
            text.strip_prefix("{{")
                .and_then(|t| t.strip_suffix("}}"))
                .is_some_and(|inner| inner.trim() == whole)
        })
        .map(|(_, field, _)| field)
        .max_by_key(|f| rank(*f))
}

/// A JSON number that is a whole number (`5` or `5.0`).
fn integral(n: &serde_json::Number) -> Option<i64> {
    n.as_i64().or_else(|| {
        let f = n.as_f64()?;
        (f.fract() == 0.0 && f.abs() <= MAX_INTEGER as f64).then_some(f as i64)
    })
}

/// [`DURATION_PATTERN`] without a regex: one number and one unit, in bounds.
fn duration_form(text: &str) -> bool {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    let most = match unit {
        "ms" => 8,
        "s" => 5,
        "m" => 4,
        "h" => {
            return match digits {
                1 | 2 => true,
                3 => number.starts_with('1') && number.parse::<u32>().is_ok_and(|h| h <= 168),
                _ => false,
            };
        }
        _ => return false,
    };
    (1..=most).contains(&digits)
}

fn kind_name(kind: ParamType) -> &'static str {
    match kind {
        ParamType::String => "string",
        ParamType::Integer => "integer",
        ParamType::Boolean => "boolean",
        ParamType::Duration => "duration",
        ParamType::List => "list",
    }
}

fn json_types(kind: ParamType) -> &'static str {
    match kind {
        ParamType::String | ParamType::Duration => "a JSON string",
        ParamType::Integer => "a JSON integer or a string of digits",
        ParamType::Boolean => "true or false",
        ParamType::List => "a JSON array of strings or a string",
    }
}

fn type_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A value as an error message shows it: short, whatever was sent.
fn shown(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(60) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runbook(name: &str) -> Runbook {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("runbooks")
            .join(format!("{name}.yaml"));
        super::super::load(&path).unwrap()
    }

    fn param<'r>(runbook: &'r Runbook, name: &str) -> &'r Param {
        runbook.params.iter().find(|p| p.name == name).unwrap()
    }

    #[test]
    fn each_type_takes_its_json_forms_exactly() {
        let plan = runbook("evs-az-switchover");
        let take = |name: &str, value: Value| from_json(&plan, param(&plan, name), &value);
        assert_eq!(take("max_parallel", json!(4)), Ok("4".into()));
        assert_eq!(take("max_parallel", json!(4.0)), Ok("4".into()));
        assert_eq!(take("max_parallel", json!("-12")), Ok("-12".into()));
        assert_eq!(
            take("max_parallel", json!(MAX_INTEGER)),
            Ok(MAX_INTEGER.to_string())
        );
        for bad in [
            json!(4.5),
            json!(MAX_INTEGER + 1),
            json!(" 4"),
            json!("4x"),
            json!(""),
        ] {
            assert!(
                matches!(take("max_parallel", bad.clone()), Err(ValueError::Value(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            take("max_parallel", json!(true)),
            Err(ValueError::Type(_))
        ));
        assert_eq!(take("verify_timeout", json!("168h")), Ok("168h".into()));
        assert_eq!(take("verify_timeout", json!("99999s")), Ok("99999s".into()));
        for bad in ["169h", "099h", "100000s", "5", "5s ", "1h30m", "soon"] {
            assert!(
                matches!(
                    take("verify_timeout", json!(bad)),
                    Err(ValueError::Value(_))
                ),
                "{bad}"
            );
        }
        assert_eq!(
            take("group_ids", json!(["g1", "g2"])),
            Ok(r#"["g1","g2"]"#.into())
        );
        assert_eq!(take("group_ids", json!("g1, g2")), Ok("g1, g2".into()));
        // Text that looks like JSON but is not: its words.
        assert_eq!(take("group_ids", json!("[g1")), Ok(r#"["[g1"]"#.into()));
        assert!(matches!(
            take("group_ids", json!([1])),
            Err(ValueError::Type(_))
        ));
        assert!(matches!(
            take("from_az", json!(null)),
            Err(ValueError::Type(_))
        ));
    }

    #[test]
    fn a_parameter_written_whole_into_an_id_must_be_one() {
        let switchover = runbook("evs-switchover");
        let group = param(&switchover, "group_id");
        assert_eq!(id_field(&switchover, "group_id"), Some(IdField::EvsGroup));
        assert_eq!(
            from_json(&switchover, group, &json!("g-1")),
            Ok("g-1".into())
        );
        for bad in ["", "g1 ", "g1/..", &"g".repeat(65)] {
            assert!(
                matches!(
                    from_json(&switchover, group, &json!(bad)),
                    Err(ValueError::Value(_))
                ),
                "{bad}"
            );
        }
        let drill = runbook("sdrs-drill");
        assert_eq!(id_field(&drill, "drill_vpc_id"), Some(IdField::Vpc));
        assert_eq!(
            from_json(&drill, param(&drill, "drill_vpc_id"), &json!("")),
            Ok(String::new())
        );
        let schema = request_schema(&drill);
        assert_eq!(
            schema["properties"]["params"]["properties"]["drill_vpc_id"]["pattern"],
            "^[A-Za-z0-9-]{0,64}$"
        );
    }

    #[test]
    fn the_duration_form_matches_its_pattern() {
        // The pattern in the schema and the check here say the same.
        for (text, ok) in [
            ("1ms", true),
            ("99999999ms", true),
            ("100000000ms", false),
            ("9999m", true),
            ("10000m", false),
            ("0h", true),
            ("99h", true),
            ("159h", true),
            ("160h", true),
            ("168h", true),
            ("169h", false),
            ("200h", false),
            ("1d", false),
            ("h", false),
        ] {
            assert_eq!(duration_form(text), ok, "{text}");
        }
    }
}
