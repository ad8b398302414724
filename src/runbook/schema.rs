//! The JSON Schema of runbook files, for editors and CI linters (`drover schema`).
//!
//! Generated from the raw model types, so it cannot drift from the parser; the
//! per-action shape of `with` is added as `if`/`then` rules keyed on `action`.

use serde_json::{Value, json};

use super::model::{ACTION_NAMES, Action, RawRunbook};

/// The runbook JSON Schema (draft 2020-12).
pub fn runbook_schema() -> Value {
    let mut generator = schemars::generate::SchemaSettings::draft2020_12().into_generator();
    let inputs: Vec<(&str, Value)> = Action::input_schemas(&mut generator)
        .into_iter()
        .map(|(name, schema)| (name, schema.to_value()))
        .collect();
    let mut root = generator.into_root_schema_for::<RawRunbook>().to_value();

    root["$id"] = json!("https://drover.dev/schema/runbook.json");
    if let Some(name) = root.pointer_mut("/properties/name") {
        name["pattern"] = json!("^[a-z0-9][a-z0-9-]{0,63}$");
    }
    if let Some(step) = root.pointer_mut("/$defs/RawStep") {
        step["properties"]["action"] = json!({
            "description": "What the step does, from the action catalog.",
            "enum": ACTION_NAMES,
        });
        step["properties"]["id"]["pattern"] = json!("^[a-z][a-z0-9_]{0,63}$");
        let rules: Vec<Value> = inputs
            .into_iter()
            .map(|(name, schema)| {
                json!({
                    "if": { "properties": { "action": { "const": name } }, "required": ["action"] },
                    "then": { "properties": { "with": schema } }
                })
            })
            .collect();
        step["allOf"] = Value::Array(rules);
    }
    root
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_every_action_and_top_level_key() {
        let schema = runbook_schema();
        let actions = schema
            .pointer("/$defs/RawStep/properties/action/enum")
            .unwrap();
        assert_eq!(actions.as_array().unwrap().len(), ACTION_NAMES.len());
        let rules = schema
            .pointer("/$defs/RawStep/allOf")
            .unwrap()
            .as_array()
            .unwrap();
        assert_eq!(rules.len(), ACTION_NAMES.len(), "one with-rule per action");
        for key in [
            "name",
            "kind",
            "params",
            "retry",
            "steps",
            "finally",
            "schedules",
        ] {
            assert!(
                schema.pointer(&format!("/properties/{key}")).is_some(),
                "{key}"
            );
        }
        assert_eq!(schema["additionalProperties"], json!(false));
    }
}
