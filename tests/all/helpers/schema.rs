//! The JSON Schemas of `schemas/`, and validation against them.

/// A JSON Schema from `schemas/`.
pub fn schema(name: &str) -> jsonschema::Validator {
    let path = format!("{}/../schemas/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap()
}

/// Asserts `value` matches the schema, listing every violation.
pub fn assert_schema(validator: &jsonschema::Validator, value: &serde_json::Value) {
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect();
    assert!(errors.is_empty(), "{value} violates the schema: {errors:?}");
}
