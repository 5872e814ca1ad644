//! Kafka Connect's and Debezium's encodings inside row images, read back to exact values, and the
//! placeholders PostgreSQL's connector writes for old values it was not sent: as
//! processor/tap/connect.py (read the why there).

use std::collections::HashMap;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use num_bigint::BigInt;
use serde_json::{Map, Value};

use crate::json::{canonical, decimal_value, is_integer, is_zero_number};

const DECIMAL: &str = "org.apache.kafka.connect.data.Decimal";
const VARIABLE_SCALE_DECIMAL: &str = "io.debezium.data.VariableScaleDecimal";
const MAX_SCALE: i64 = 1_000_000;
const MAX_DECIMAL_BYTES: usize = 1024;
const TEXT_PLACEHOLDERS: [&str; 3] = ["1970-01-01T00:00:00Z", "00:00:00Z", "AA=="];

// Python's b64decode after the strict shape check accepts non-zero trailing bits ("AB=="): so here.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

/// A value the schema names a decimal does not read as one.
pub struct NotDecimal;

/// The image with every decimal it holds read as a number: a copy where one was read, else None.
pub fn read_decimals(
    image: &Map<String, Value>,
    fields: &FieldMaps,
) -> Result<Option<Map<String, Value>>, NotDecimal> {
    let mut out: Option<Map<String, Value>> = None;
    for (name, value) in image {
        if let Some(decoded) = read(value, fields.get(name.as_str()).copied())? {
            out.get_or_insert_with(|| image.clone())
                .insert(name.clone(), decoded);
        }
    }
    Ok(out)
}

/// Field schemas of a struct by name (the last of a repeated name wins, as a dict does).
pub type FieldMaps<'a> = HashMap<&'a str, &'a Map<String, Value>>;

pub fn field_maps<'a>(struct_: Option<&'a Value>) -> FieldMaps<'a> {
    let mut out = HashMap::new();
    for f in fields_of(struct_) {
        if let Some(Value::String(name)) = f.get("field") {
            out.insert(name.as_str(), f);
        }
    }
    out
}

fn fields_of(struct_: Option<&Value>) -> Vec<&Map<String, Value>> {
    match struct_.and_then(|s| s.get("fields")) {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_object).collect(),
        _ => Vec::new(),
    }
}

/// The field schemas of the envelope's 'before' or 'after' struct (empty without a schema).
pub fn image_field_maps<'a>(envelope_schema: Option<&'a Value>, image: &str) -> FieldMaps<'a> {
    let found = match envelope_schema.and_then(|s| s.get("fields")) {
        Some(Value::Array(items)) => items.iter().find(|f| {
            f.as_object().is_some() && f.get("field").and_then(Value::as_str) == Some(image)
        }),
        _ => None,
    };
    field_maps(found)
}

fn logical(schema: Option<&Map<String, Value>>) -> Option<&Value> {
    schema.and_then(|s| s.get("name")).filter(|n| !n.is_null())
}

/// Some(new value) where a decimal was read; Err where the schema says decimal and it is not one.
fn read(value: &Value, schema: Option<&Map<String, Value>>) -> Result<Option<Value>, NotDecimal> {
    let name = logical(schema);
    let named = |n: &str| matches!(name, Some(Value::String(s)) if s == n);
    match value {
        Value::String(text) if named(DECIMAL) => Ok(Some(decimal(text, scale(schema)?)?)),
        Value::Object(m) if named(VARIABLE_SCALE_DECIMAL) || name.is_none() => {
            variable_scale(m, named(VARIABLE_SCALE_DECIMAL))
        }
        Value::Array(items)
            if schema.is_some_and(
                |s| matches!(s.get("type"), Some(Value::String(t)) if t == "array"),
            ) =>
        {
            let item_schema = schema
                .and_then(|s| s.get("items"))
                .and_then(Value::as_object);
            let mut changed = false;
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                match read(item, item_schema)? {
                    Some(d) => {
                        changed = true;
                        out.push(d);
                    }
                    None => out.push(item.clone()),
                }
            }
            Ok(changed.then_some(Value::Array(out)))
        }
        _ => Ok(None),
    }
}

fn scale(schema: Option<&Map<String, Value>>) -> Result<i64, NotDecimal> {
    let raw = schema
        .and_then(|s| s.get("parameters"))
        .and_then(Value::as_object)
        .and_then(|p| p.get("scale"));
    let Some(Value::String(text)) = raw else {
        return Err(NotDecimal);
    };
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || digits.len() > 7 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(NotDecimal);
    }
    let n: i64 = text.parse().map_err(|_| NotDecimal)?;
    if n.abs() > MAX_SCALE {
        return Err(NotDecimal);
    }
    Ok(n)
}

fn variable_scale(m: &Map<String, Value>, strict: bool) -> Result<Option<Value>, NotDecimal> {
    let shaped = m.len() == 2
        && match (m.get("scale"), m.get("value")) {
            (Some(s @ Value::Number(n)), Some(Value::String(v))) => {
                is_integer(s) && n.as_i64().is_some_and(|x| x.abs() <= MAX_SCALE) && is_base64(v)
            }
            _ => false,
        };
    if shaped {
        let scale = m["scale"].as_i64().expect("checked");
        let text = m["value"].as_str().expect("checked");
        return decimal(text, scale).map(Some);
    }
    if strict {
        return Err(NotDecimal);
    }
    Ok(None)
}

fn decimal(text: &str, scale: i64) -> Result<Value, NotDecimal> {
    if !is_base64(text) {
        return Err(NotDecimal);
    }
    let bytes = BASE64.decode(text).map_err(|_| NotDecimal)?;
    if bytes.len() > MAX_DECIMAL_BYTES {
        return Err(NotDecimal);
    }
    let unscaled = BigInt::from_signed_bytes_be(&bytes);
    Ok(decimal_value(&unscaled.to_string(), scale))
}

/// Strict base64 (processor.tap.connect._BASE64): full quads, padding only at the end.
pub fn is_base64(text: &str) -> bool {
    let b = text.as_bytes();
    if !b.len().is_multiple_of(4) {
        return false;
    }
    let alpha = |c: u8| c.is_ascii_alphanumeric() || c == b'+' || c == b'/';
    let body = match b {
        [.., x, b'=', b'='] => {
            if !alpha(*x) {
                return false;
            }
            &b[..b.len() - 2]
        }
        [.., b'='] => &b[..b.len() - 1],
        _ => b,
    };
    body.iter().all(|c| alpha(*c))
}

/// Whether every non-key value of a before-image, as it came or with its decimals read, is a
/// placeholder: null, false, "", a zero, an epoch text, or the column default from the schema.
pub fn placeholder_image(
    raw: &Map<String, Value>,
    read: &Map<String, Value>,
    key: &Map<String, Value>,
    fields: &FieldMaps,
) -> bool {
    let mut others = raw.keys().filter(|f| !key.contains_key(*f)).peekable();
    others.peek().is_some()
        && others.all(|f| {
            let schema = fields.get(f.as_str()).copied();
            placeholder(raw.get(f), schema) || placeholder(read.get(f), schema)
        })
}

fn placeholder(value: Option<&Value>, schema: Option<&Map<String, Value>>) -> bool {
    let Some(value) = value else { return true };
    match value {
        Value::Null | Value::Bool(false) => return true,
        Value::String(s) if s.is_empty() || TEXT_PLACEHOLDERS.contains(&s.as_str()) => return true,
        v if is_zero_number(v) => return true,
        _ => {}
    }
    match schema.and_then(|s| s.get("default")) {
        Some(d) if !d.is_null() => canonical(d) == canonical(value),
        _ => false,
    }
}
