//! JSON values as Python sees them: canonical text (orjson, sorted keys), equality, str(), truthiness.
//! Rare shapes (floats, nested values) are handed to Python itself, so the text is exactly Python's.

use pyo3::prelude::*;
use serde_json::{Map, Value};

/// One text per value: sorted keys, no spaces (processor.model.canonical_json).
pub fn canonical(v: &Value) -> String {
    let mut out = String::with_capacity(64);
    write(v, &mut out);
    out
}

pub fn canonical_map(m: &Map<String, Value>) -> String {
    let mut out = String::with_capacity(64);
    write_map(m, &mut out);
    out
}

fn write(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => write_map(m, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(item, out);
            }
            out.push(']');
        }
        Value::String(s) => write_str(s, out),
        other => out.push_str(&other.to_string()),
    }
}

fn write_map(m: &Map<String, Value>, out: &mut String) {
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort_unstable();
    out.push('{');
    for (i, k) in keys.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(k, out);
        out.push(':');
        write(&m[k.as_str()], out);
    }
    out.push('}');
}

fn write_str(s: &str, out: &mut String) {
    out.push_str(&serde_json::to_string(s).expect("a str always serializes"));
}

/// Python's `==` between decoded JSON values (1 == 1.0, True == 1).
pub fn py_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| py_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| py_eq(v, w)))
        }
        _ => match (numeric(a), numeric(b)) {
            (Some(Num::Int(x)), Some(Num::Int(y))) => x == y,
            (Some(x), Some(y)) => x.as_f64() == y.as_f64(),
            _ => false,
        },
    }
}

#[derive(Clone, Copy)]
enum Num {
    Int(i128),
    Float(f64),
}

impl Num {
    fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }
}

fn numeric(v: &Value) -> Option<Num> {
    match v {
        Value::Bool(b) => Some(Num::Int(*b as i128)),
        Value::Number(n) => Some(if let Some(i) = n.as_i64() {
            Num::Int(i as i128)
        } else if let Some(u) = n.as_u64() {
            Num::Int(u as i128)
        } else {
            Num::Float(n.as_f64().unwrap_or(f64::NAN))
        }),
        _ => None,
    }
}

/// An int in Python's sense (bool included), as `isinstance(v, int)` sees it.
pub fn py_int(v: &Value) -> Option<i64> {
    match v {
        Value::Bool(b) => Some(*b as i64),
        Value::Number(n) => n.as_i64().or_else(|| n.as_u64().map(|u| u as i64)),
        _ => None,
    }
}

/// `int(v)` or None when it raises (cdc._int_or_none).
pub fn int_or_none(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_u64().map(|u| u as i64))
            .or_else(|| n.as_f64().map(|f| f.trunc() as i64)),
        Value::Bool(b) => Some(*b as i64),
        Value::String(s) => parse_py_int(s),
        _ => None,
    }
}

fn parse_py_int(s: &str) -> Option<i64> {
    let t = py_strip(s);
    let (sign, digits) = match t.as_bytes().first()? {
        b'-' => (-1, &t[1..]),
        b'+' => (1, &t[1..]),
        _ => (1, t),
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
    {
        return None;
    }
    let clean: String = digits.chars().filter(|c| *c != '_').collect();
    if !clean.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    clean.parse::<i64>().ok().map(|v| sign * v)
}

/// str.strip(): Python's whitespace includes the ASCII separators 0x1c-0x1f.
pub fn py_strip(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || ('\x1c'..='\x1f').contains(&c))
}

/// Python truthiness of a decoded JSON value.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}

fn to_python<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    py.import("json")?
        .call_method1("loads", (serde_json::to_string(v).expect("serializable"),))
}

/// Python's `json.loads(text)` as a value, or None where it raises. serde_json answers first; Python
/// decides what serde refuses (it also reads NaN and Infinity), and orjson gives its result back as
/// JSON, as canonical_json would write it (NaN as null).
pub fn py_loads(py: Python<'_>, text: &str) -> PyResult<Option<Value>> {
    if let Ok(v) = serde_json::from_str(text) {
        return Ok(Some(v));
    }
    let Ok(obj) = py.import("json")?.call_method1("loads", (text,)) else {
        return Ok(None);
    };
    let Ok(dumped) = py.import("orjson")?.call_method1("dumps", (obj,)) else {
        return Ok(None);
    };
    Ok(serde_json::from_slice(dumped.downcast::<pyo3::types::PyBytes>()?.as_bytes()).ok())
}

/// `str(v)` of the decoded value.
pub fn py_str(py: Python<'_>, v: &Value) -> PyResult<String> {
    Ok(match v {
        Value::String(s) => s.clone(),
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
        other => to_python(py, other)?.str()?.to_string(),
    })
}

/// `json.dumps(v)` (Python's defaults: ", " and ": " separators, ASCII only).
pub fn py_dumps(py: Python<'_>, v: &Value, sort_keys: bool) -> PyResult<String> {
    Ok(match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
        other => {
            let kwargs = pyo3::types::PyDict::new(py);
            kwargs.set_item("sort_keys", sort_keys)?;
            py.import("json")?
                .call_method("dumps", (to_python(py, other)?,), Some(&kwargs))?
                .extract()?
        }
    })
}
