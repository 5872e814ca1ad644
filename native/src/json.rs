//! JSON text <-> values, exactly, by the rules of processor/jsonvalue.py (read them there): strict
//! UTF-8 RFC 8259, at most MAX_DEPTH levels, every number kept as written (serde_json's
//! arbitrary_precision) and written canonically as Python writes str(int) and str(Decimal).

use serde::Deserialize;
use serde_json::{Map, Value};

pub const MAX_DEPTH: usize = 256;
const MAX_EXPONENT: i128 = 1_000_000_000_000_000; // 10^15

/// The value of a JSON text, or None where processor.jsonvalue.loads raises.
pub fn parse(data: &[u8]) -> Option<Value> {
    if !within_rules(data) {
        return None;
    }
    let text = std::str::from_utf8(data).ok()?;
    let mut de = serde_json::Deserializer::from_str(text);
    de.disable_recursion_limit();
    let value = Value::deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some(value)
}

/// One pass over the text, outside strings: nesting at most MAX_DEPTH, and every number token's
/// exponent within MAX_EXPONENT (a repeated key's dropped value counts too). For a valid text these
/// are its exact depth and numbers; an invalid one the parser refuses anyway.
fn within_rules(data: &[u8]) -> bool {
    let (mut depth, mut in_string, mut escaped, mut i) = (0usize, false, false, 0usize);
    while i < data.len() {
        let b = data[i];
        i += 1;
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return false;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b'-' | b'0'..=b'9' => {
                let start = i - 1;
                let mut exponent = false;
                while i < data.len()
                    && matches!(data[i], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
                {
                    exponent |= matches!(data[i], b'e' | b'E');
                    i += 1;
                }
                // Without an exponent a number's is minus its fraction digits: the text bounds it.
                if exponent || i - start > 1_000_000 {
                    let token = std::str::from_utf8(&data[start..i]).expect("ascii");
                    if Dec::of(token).is_none_or(|d| d.exp.abs() >= MAX_EXPONENT) {
                        return false;
                    }
                }
            }
            _ => {}
        }
    }
    true
}

// -- numbers --------------------------------------------------------------------------------------

/// A number literal as Python's Decimal holds it: sign, coefficient digits, exponent.
struct Dec {
    neg: bool,
    digits: String, // no leading zeros; "0" for zero
    exp: i128,
    integer: bool, // written without fraction or exponent: Python reads it as an int
}

impl Dec {
    fn of(literal: &str) -> Option<Dec> {
        let (neg, rest) = match literal.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, literal),
        };
        let (mantissa, written_exp) = match rest.find(['e', 'E']) {
            Some(i) => (&rest[..i], exponent(&rest[i + 1..])?),
            None => (rest, 0),
        };
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let joined = format!("{int}{frac}");
        let trimmed = joined.trim_start_matches('0');
        Some(Dec {
            neg,
            digits: if trimmed.is_empty() {
                "0".into()
            } else {
                trimmed.into()
            },
            exp: written_exp - frac.len() as i128,
            integer: !rest.contains(['.', 'e', 'E']),
        })
    }

    fn is_zero(&self) -> bool {
        self.digits == "0"
    }

    /// Python's Decimal.adjusted(): the exponent of the most significant digit.
    fn adjusted(&self) -> i128 {
        self.exp + self.digits.len() as i128 - 1
    }

    /// str(int) for an integer literal, str(Decimal) (to-scientific-string) for any other.
    fn text(&self) -> String {
        if self.integer {
            return if self.is_zero() {
                "0".into()
            } else {
                format!("{}{}", if self.neg { "-" } else { "" }, self.digits)
            };
        }
        let sign = if self.neg { "-" } else { "" };
        let n = self.digits.len() as i128;
        let left = self.exp + n;
        let dot = if self.exp <= 0 && left > -6 { left } else { 1 };
        let (int_part, frac_part) = if dot <= 0 {
            (
                "0".to_string(),
                format!(".{}{}", "0".repeat((-dot) as usize), self.digits),
            )
        } else if dot >= n {
            (
                format!("{}{}", self.digits, "0".repeat((dot - n) as usize)),
                String::new(),
            )
        } else {
            let (a, b) = self.digits.split_at(dot as usize);
            (a.to_string(), format!(".{b}"))
        };
        let exp_part = if left == dot {
            String::new()
        } else {
            format!("E{:+}", left - dot)
        };
        format!("{sign}{int_part}{frac_part}{exp_part}")
    }

    /// The value with trailing zeros of the coefficient folded into the exponent (zero as 0E0).
    fn normalized(&self) -> (bool, &str, i128) {
        if self.is_zero() {
            return (false, "0", 0);
        }
        let digits = self.digits.trim_end_matches('0');
        let shift = (self.digits.len() - digits.len()) as i128;
        (self.neg, digits, self.exp + shift)
    }

    /// int(Decimal) toward zero, within 64 bits (processor.tap.fields.int_or_none).
    fn truncated(&self) -> Option<i64> {
        if self.is_zero() || self.adjusted() < 0 {
            return Some(0);
        }
        if self.adjusted() >= 19 {
            return None;
        }
        let whole = if self.exp >= 0 {
            format!("{}{}", self.digits, "0".repeat(self.exp as usize))
        } else {
            self.digits[..(self.digits.len() as i128 + self.exp) as usize].to_string()
        };
        let n: i128 = whole.parse().ok()?;
        i64::try_from(if self.neg { -n } else { n }).ok()
    }
}

/// A written exponent ('+17', '-007'): saturated far past MAX_EXPONENT when it has too many digits.
fn exponent(text: &str) -> Option<i128> {
    let (neg, digits) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let digits = digits.trim_start_matches('0');
    let n: i128 = if digits.len() > 30 {
        MAX_EXPONENT * 1000
    } else if digits.is_empty() {
        0
    } else {
        digits.parse().ok()?
    };
    Some(if neg { -n } else { n })
}

fn dec(v: &Value) -> Option<Dec> {
    match v {
        Value::Number(n) => Dec::of(&n.to_string()),
        _ => None,
    }
}

/// A decimal number with ``digits`` (signed) times 10^-scale, as a JSON value.
pub fn decimal_value(unscaled: &str, scale: i64) -> Value {
    serde_json::from_str(&format!("{unscaled}E{}", -scale)).expect("a valid number literal")
}

// -- canonical text -------------------------------------------------------------------------------

/// One text per value: sorted keys, no spaces, exact numbers (processor.jsonvalue.canonical_json).
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
        Value::Number(n) => write_number(n.as_str(), out),
        other => out.push_str(&other.to_string()),
    }
}

/// A number's canonical text: most literals are it already (an integer other than -0, a decimal
/// without exponent whose first significant digit is at most 6 places after the point).
fn write_number(literal: &str, out: &mut String) {
    let plain = !literal.contains(['e', 'E']);
    let unsigned = literal.strip_prefix('-').unwrap_or(literal);
    let canonical_already = plain
        && match unsigned.strip_prefix("0.") {
            Some(frac) => frac.bytes().take(6).any(|b| b != b'0'),
            None => unsigned != "0" || literal == "0",
        };
    if canonical_already {
        out.push_str(literal);
    } else {
        out.push_str(&Dec::of(literal).expect("parsed").text());
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

/// Text as is; any other value as its canonical JSON (processor.jsonvalue.text_of).
pub fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => canonical(other),
    }
}

// -- values as Python compares them --------------------------------------------------------------

/// Python's `==` between decoded values: numbers by exact value, true == 1.
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
        (Value::Number(x), Value::Number(y)) if x.as_str() == y.as_str() => true,
        _ => match (numeric(a), numeric(b)) {
            (Some(x), Some(y)) => x.normalized() == y.normalized(),
            _ => false,
        },
    }
}

fn numeric(v: &Value) -> Option<Dec> {
    match v {
        Value::Bool(b) => Dec::of(if *b { "1" } else { "0" }),
        other => dec(other),
    }
}

/// A number, not a boolean, equal to zero.
pub fn is_zero_number(v: &Value) -> bool {
    dec(v).is_some_and(|d| d.is_zero())
}

/// An int in Python's sense (a boolean included, as `isinstance(v, int)` sees it), within 64 bits.
pub fn py_int(v: &Value) -> Option<i64> {
    match v {
        Value::Bool(b) => Some(*b as i64),
        Value::Number(n) if dec(v).is_some_and(|d| d.integer) => n.as_i64(),
        _ => None,
    }
}

/// An integer literal (not a boolean).
pub fn is_integer(v: &Value) -> bool {
    dec(v).is_some_and(|d| d.integer)
}

/// An integer Python reads as an int: at most 4,300 digits (past that it is a Decimal).
pub fn is_py_int(v: &Value) -> bool {
    dec(v).is_some_and(|d| d.integer && d.digits.len() <= 4300)
}

/// processor.tap.fields.int_or_none: a number toward zero, a boolean, or ASCII digits; within 64 bits.
pub fn int_or_none(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Bool(b) => Some(*b as i64),
        n @ Value::Number(_) => dec(n)?.truncated(),
        Value::String(s) => parse_int_text(s),
        _ => None,
    }
}

fn parse_int_text(s: &str) -> Option<i64> {
    let t = s.trim_matches([' ', '\t', '\n', '\r']);
    let (neg, digits) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let stripped = digits.trim_start_matches('0');
    let stripped = if stripped.is_empty() { "0" } else { stripped };
    if stripped.len() > 19 {
        return None;
    }
    let n: i128 = stripped.parse().ok()?;
    i64::try_from(if neg { -n } else { n }).ok()
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
        Value::Number(_) => !is_zero_number(v),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}
