//! RFC 8785, the JSON Canonicalization Scheme: one byte sequence per JSON
//! value, so that any implementation in any language hashes a manifest or
//! signs a receipt body the same way.
//!
//! Two entry points:
//! - [`canonicalize_value`] canonicalizes any [`serde_json::Value`]: it sorts
//!   object keys by UTF-16 code units and formats numbers as ECMAScript does.
//! - [`to_canonical`] / [`write_canonical`] stream a `Serialize` value
//!   straight to bytes without building a tree, so a 100,000-page manifest
//!   costs about its own size. They do not reorder anything: they *check*
//!   that the value serializes canonically (object keys strictly ascending,
//!   integers within ±2^53) and fail otherwise. The wire types declare their
//!   fields in sorted order so that they always pass.
use std::cmp::Ordering;
use std::io;

use serde::Serialize;
use serde_json::Value;
use serde_json::ser::{CharEscape, Formatter};

/// The largest integer magnitude an IEEE 754 double holds exactly; JCS
/// numbers are doubles, so a larger integer would change when read back.
pub const MAX_SAFE_INTEGER: u64 = 1 << 53;

/// Why a value has no canonical encoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JcsError {
    /// An integer outside ±2^53, which a double cannot carry exactly.
    #[error("integer {0} is beyond 2^53 and cannot be carried exactly by a JSON number")]
    UnsafeInteger(String),
    /// NaN or an infinity, which JSON cannot express.
    #[error("number {0} is not finite")]
    NonFinite(String),
    /// Object keys that are not strictly ascending in UTF-16 order (a
    /// duplicate key included); only [`to_canonical`] can meet this.
    #[error("object key {key:?} follows {previous:?}: keys must be strictly ascending")]
    KeyOrder { previous: String, key: String },
    /// Something that has no JSON canonical form, such as a raw JSON fragment.
    #[error("cannot canonicalize: {0}")]
    Unsupported(String),
    /// The value's own `Serialize` implementation failed.
    #[error("serialize: {0}")]
    Serialize(String),
}

/// The canonical encoding of an arbitrary JSON value.
pub fn canonicalize_value(value: &Value) -> Result<Vec<u8>, JcsError> {
    let mut out = Vec::new();
    write_value(&mut out, value)?;
    Ok(out)
}

/// The canonical encoding of `value`, streamed without an intermediate tree.
///
/// Fails with [`JcsError::KeyOrder`] if an object's keys do not come out in
/// canonical order. Note that serde_json writes a non-finite float as
/// `null`; the wire types carry no floats.
pub fn to_canonical<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, JcsError> {
    let mut out = Vec::new();
    write_canonical(&mut out, value)?;
    Ok(out)
}

/// Writes the canonical encoding of `value` to `writer` (see [`to_canonical`]).
///
/// An I/O error of `writer` is reported as [`JcsError::Serialize`].
pub fn write_canonical<W, T>(writer: W, value: &T) -> Result<(), JcsError>
where
    W: io::Write,
    T: Serialize + ?Sized,
{
    let mut serializer = serde_json::Serializer::with_formatter(writer, CanonicalFormatter::new());
    value.serialize(&mut serializer).map_err(|error| {
        if error.is_io() {
            let io_error = io::Error::from(error);
            match io_error
                .into_inner()
                .map(|inner| inner.downcast::<JcsError>())
            {
                Some(Ok(jcs)) => *jcs,
                Some(Err(other)) => JcsError::Serialize(other.to_string()),
                None => JcsError::Serialize("write failed".to_owned()),
            }
        } else {
            JcsError::Serialize(error.to_string())
        }
    })
}

/// A number as ECMAScript's `Number.prototype.toString` writes it, which is
/// what RFC 8785 prescribes: the shortest digits that read back to the same
/// double, in plain notation for magnitudes in [1e-6, 1e21) and exponent
/// notation (`1e+21`, `5e-324`) outside it; `-0` is `0`.
pub fn format_number(value: f64) -> Result<String, JcsError> {
    if !value.is_finite() {
        return Err(JcsError::NonFinite(value.to_string()));
    }
    if value == 0.0 {
        return Ok("0".to_owned());
    }
    // Ryu gives the shortest digits that read back to the same double and,
    // between two equally near candidates, the even one, exactly as
    // ECMAScript's algorithm does. Only its layout differs, so take its
    // output apart into digits and the decimal point's position.
    let mut buffer = ryu::Buffer::new();
    let (digits, n) = decimal_digits(buffer.format_finite(value.abs()))?;
    let k = digits.len() as i64;

    let mut out = String::with_capacity(digits.len() + 8);
    if value < 0.0 {
        out.push('-');
    }
    if k <= n && n <= 21 {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', (n - k) as usize));
    } else if 0 < n && n <= 21 {
        let (whole, fraction) = digits.split_at(n as usize);
        out.push_str(whole);
        out.push('.');
        out.push_str(fraction);
    } else if -6 < n && n <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-n) as usize));
        out.push_str(&digits);
    } else {
        let (first, rest) = digits.split_at(1);
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        out.push('e');
        out.push(if n > 0 { '+' } else { '-' });
        out.push_str(&(n - 1).abs().to_string());
    }
    Ok(out)
}

/// Splits a finite, non-zero decimal such as `1.5e-7`, `0.001` or `12.0`
/// into its significant digits `d1...dk` (no leading or trailing zeros) and
/// the ECMAScript exponent `n` such that the value is `0.d1...dk × 10^n`.
fn decimal_digits(text: &str) -> Result<(String, i64), JcsError> {
    let unexpected = || JcsError::Unsupported(format!("unexpected float format {text}"));
    let (mantissa, exponent) = match text.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => {
            (mantissa, exponent.parse::<i64>().map_err(|_| unexpected())?)
        }
        None => (text, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if !whole
        .bytes()
        .chain(fraction.bytes())
        .all(|byte| byte.is_ascii_digit())
    {
        return Err(unexpected());
    }
    let all_digits = format!("{whole}{fraction}");
    let leading_zeros = all_digits.len() - all_digits.trim_start_matches('0').len();
    let digits = all_digits.trim_matches('0').to_owned();
    if digits.is_empty() {
        return Err(unexpected());
    }
    let n = whole.len() as i64 - leading_zeros as i64 + exponent;
    Ok((digits, n))
}

/// Compares two strings by their UTF-16 code units, the order RFC 8785
/// sorts object keys in (it differs from UTF-8 byte order once characters
/// beyond U+FFFF meet characters in U+E000..U+FFFF).
pub fn utf16_cmp(a: &str, b: &str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

fn write_value(out: &mut Vec<u8>, value: &Value) -> Result<(), JcsError> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(number) => {
            let text = if let Some(unsigned) = number.as_u64() {
                check_integer(unsigned, false)?;
                unsigned.to_string()
            } else if let Some(signed) = number.as_i64() {
                check_integer(signed.unsigned_abs(), signed < 0)?;
                signed.to_string()
            } else if let Some(float) = number.as_f64() {
                format_number(float)?
            } else {
                return Err(JcsError::Unsupported(format!("number {number}")));
            };
            out.extend_from_slice(text.as_bytes());
        }
        Value::String(text) => write_string(out, text),
        Value::Array(items) => {
            out.push(b'[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_value(out, item)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| utf16_cmp(a.0, b.0));
            out.push(b'{');
            for (index, (key, item)) in entries.into_iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_string(out, key);
                out.push(b':');
                write_value(out, item)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

fn check_integer(magnitude: u64, negative: bool) -> Result<(), JcsError> {
    if magnitude > MAX_SAFE_INTEGER {
        let sign = if negative { "-" } else { "" };
        return Err(JcsError::UnsafeInteger(format!("{sign}{magnitude}")));
    }
    Ok(())
}

fn check_wide_integer(value: i128) -> Result<(), JcsError> {
    if value.unsigned_abs() > u128::from(MAX_SAFE_INTEGER) {
        return Err(JcsError::UnsafeInteger(value.to_string()));
    }
    Ok(())
}

/// A JSON string as RFC 8785 writes it: `"` and `\` and the controls below
/// U+0020 escaped (short forms where JSON has them, else `\u00xx`), every
/// other character, U+2028 and U+007F included, as itself in UTF-8.
fn write_string(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    let mut start = 0;
    for (index, character) in text.char_indices() {
        if let Some(escape) = escape_of(character) {
            out.extend_from_slice(&text.as_bytes()[start..index]);
            out.extend_from_slice(escape.as_bytes());
            start = index + character.len_utf8();
        }
    }
    out.extend_from_slice(&text.as_bytes()[start..]);
    out.push(b'"');
}

/// The escape sequence of a character JCS escapes, or `None`.
fn escape_of(character: char) -> Option<String> {
    let escape = match character {
        '"' => "\\\"".to_owned(),
        '\\' => "\\\\".to_owned(),
        '\u{8}' => "\\b".to_owned(),
        '\u{c}' => "\\f".to_owned(),
        '\n' => "\\n".to_owned(),
        '\r' => "\\r".to_owned(),
        '\t' => "\\t".to_owned(),
        control if u32::from(control) < 0x20 => format!("\\u{:04x}", u32::from(control)),
        _ => return None,
    };
    Some(escape)
}

/// A serde_json formatter that writes compact JSON with JCS escapes and
/// numbers, and refuses anything whose canonical form would need
/// reordering: object keys must come strictly ascending in UTF-16 order.
struct CanonicalFormatter {
    /// The last key seen in each object being written, innermost last.
    previous_keys: Vec<Option<String>>,
    /// The key being written, between `begin_object_key` and `end_object_key`.
    key: Option<String>,
}

impl CanonicalFormatter {
    fn new() -> Self {
        Self {
            previous_keys: Vec::new(),
            key: None,
        }
    }

    fn note_key_text(&mut self, text: &str) {
        if let Some(key) = &mut self.key {
            key.push_str(text);
        }
    }

    fn write_integer<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        value: i128,
    ) -> io::Result<()> {
        check_wide_integer(value).map_err(io::Error::other)?;
        let text = value.to_string();
        self.note_key_text(&text);
        writer.write_all(text.as_bytes())
    }
}

impl Formatter for CanonicalFormatter {
    fn write_bool<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: bool) -> io::Result<()> {
        let text = if value { "true" } else { "false" };
        self.note_key_text(text);
        writer.write_all(text.as_bytes())
    }

    fn write_i8<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: i8) -> io::Result<()> {
        self.write_integer(writer, value.into())
    }

    fn write_i16<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: i16) -> io::Result<()> {
        self.write_integer(writer, value.into())
    }

    fn write_i32<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: i32) -> io::Result<()> {
        self.write_integer(writer, value.into())
    }

    fn write_i64<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: i64) -> io::Result<()> {
        self.write_integer(writer, value.into())
    }

    fn write_i128<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: i128) -> io::Result<()> {
        self.write_integer(writer, value)
    }

    fn write_u8<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: u8) -> io::Result<()> {
        self.write_integer(writer, value.into())
    }

    fn write_u16<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: u16) -> io::Result<()> {
        self.write_integer(writer, value.into())
    }

    fn write_u32<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: u32) -> io::Result<()> {
        self.write_integer(writer, value.into())
    }

    fn write_u64<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: u64) -> io::Result<()> {
        self.write_integer(writer, value.into())
    }

    fn write_u128<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: u128) -> io::Result<()> {
        let value = i128::try_from(value)
            .map_err(|_| io::Error::other(JcsError::UnsafeInteger(value.to_string())))?;
        self.write_integer(writer, value)
    }

    fn write_f32<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f32) -> io::Result<()> {
        self.write_f64(writer, f64::from(value))
    }

    fn write_f64<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f64) -> io::Result<()> {
        let text = format_number(value).map_err(io::Error::other)?;
        self.note_key_text(&text);
        writer.write_all(text.as_bytes())
    }

    fn write_number_str<W: ?Sized + io::Write>(
        &mut self,
        _writer: &mut W,
        value: &str,
    ) -> io::Result<()> {
        Err(io::Error::other(JcsError::Unsupported(format!(
            "arbitrary-precision number {value}"
        ))))
    }

    fn write_raw_fragment<W: ?Sized + io::Write>(
        &mut self,
        _writer: &mut W,
        _fragment: &str,
    ) -> io::Result<()> {
        Err(io::Error::other(JcsError::Unsupported(
            "raw JSON fragment".to_owned(),
        )))
    }

    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        self.note_key_text(fragment);
        writer.write_all(fragment.as_bytes())
    }

    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        char_escape: CharEscape,
    ) -> io::Result<()> {
        let character = match char_escape {
            CharEscape::Quote => '"',
            CharEscape::ReverseSolidus => '\\',
            CharEscape::Solidus => '/',
            CharEscape::Backspace => '\u{8}',
            CharEscape::FormFeed => '\u{c}',
            CharEscape::LineFeed => '\n',
            CharEscape::CarriageReturn => '\r',
            CharEscape::Tab => '\t',
            CharEscape::AsciiControl(byte) => char::from(byte),
        };
        if let Some(key) = &mut self.key {
            key.push(character);
        }
        // The escapes are ours, not serde_json's, so the output follows
        // RFC 8785 even if serde_json ever escaped a character JCS does not.
        match escape_of(character) {
            Some(escape) => writer.write_all(escape.as_bytes()),
            None => {
                let mut buffer = [0; 4];
                writer.write_all(character.encode_utf8(&mut buffer).as_bytes())
            }
        }
    }

    fn begin_object<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.previous_keys.push(None);
        writer.write_all(b"{")
    }

    fn end_object<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.previous_keys.pop();
        writer.write_all(b"}")
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.key = Some(String::new());
        if first {
            Ok(())
        } else {
            writer.write_all(b",")
        }
    }

    fn end_object_key<W: ?Sized + io::Write>(&mut self, _writer: &mut W) -> io::Result<()> {
        let key = self.key.take().unwrap_or_default();
        let Some(previous) = self.previous_keys.last_mut() else {
            return Err(io::Error::other(JcsError::Unsupported(
                "object key outside an object".to_owned(),
            )));
        };
        if let Some(before) = previous
            && utf16_cmp(before, &key) != Ordering::Less
        {
            return Err(io::Error::other(JcsError::KeyOrder {
                previous: before.clone(),
                key,
            }));
        }
        *previous = Some(key);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn canonical_text(value: &Value) -> String {
        String::from_utf8(canonicalize_value(value).unwrap()).unwrap()
    }

    /// RFC 8785 appendix B: IEEE 754 bit patterns and their JCS text.
    #[test]
    fn rfc8785_appendix_b_numbers() {
        let samples: &[(u64, &str)] = &[
            (0x0000000000000000, "0"),
            (0x8000000000000000, "0"),
            (0x0000000000000001, "5e-324"),
            (0x8000000000000001, "-5e-324"),
            (0x7fefffffffffffff, "1.7976931348623157e+308"),
            (0xffefffffffffffff, "-1.7976931348623157e+308"),
            (0x4340000000000000, "9007199254740992"),
            (0xc340000000000000, "-9007199254740992"),
            (0x4430000000000000, "295147905179352830000"),
            (0x44b52d02c7e14af5, "9.999999999999997e+22"),
            (0x44b52d02c7e14af6, "1e+23"),
            (0x44b52d02c7e14af7, "1.0000000000000001e+23"),
            (0x444b1ae4d6e2ef4e, "999999999999999700000"),
            (0x444b1ae4d6e2ef4f, "999999999999999900000"),
            (0x444b1ae4d6e2ef50, "1e+21"),
            (0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"),
            (0x3eb0c6f7a0b5ed8d, "0.000001"),
            (0x41b3de4355555553, "333333333.3333332"),
            (0x41b3de4355555554, "333333333.33333325"),
            (0x41b3de4355555555, "333333333.3333333"),
            (0x41b3de4355555556, "333333333.3333334"),
            (0x41b3de4355555557, "333333333.33333343"),
            (0xbecbf647612f3696, "-0.0000033333333333333333"),
            (0x43143ff3c1cb0959, "1424953923781206.2"),
        ];
        for &(bits, expected) in samples {
            let value = f64::from_bits(bits);
            assert_eq!(format_number(value).unwrap(), expected, "bits {bits:016x}");
            // The same through a JSON value and through the streaming path.
            assert_eq!(canonical_text(&json!(value)), expected, "bits {bits:016x}");
            assert_eq!(to_canonical(&value).unwrap(), expected.as_bytes());
        }
    }

    #[test]
    fn non_finite_numbers_are_errors() {
        for bits in [
            0x7fffffffffffffff_u64,
            0x7ff0000000000000,
            0xfff0000000000000,
        ] {
            assert!(matches!(
                format_number(f64::from_bits(bits)),
                Err(JcsError::NonFinite(_))
            ));
        }
    }

    #[test]
    fn integers_beyond_2_pow_53_are_errors() {
        assert_eq!(
            canonical_text(&json!(9_007_199_254_740_992_u64)),
            "9007199254740992"
        );
        assert_eq!(
            canonical_text(&json!(-9_007_199_254_740_992_i64)),
            "-9007199254740992"
        );
        assert!(matches!(
            canonicalize_value(&json!(9_007_199_254_740_993_u64)),
            Err(JcsError::UnsafeInteger(_))
        ));
        assert!(matches!(
            canonicalize_value(&json!(-9_007_199_254_740_993_i64)),
            Err(JcsError::UnsafeInteger(_))
        ));
        assert!(matches!(
            to_canonical(&u64::MAX),
            Err(JcsError::UnsafeInteger(_))
        ));
        assert!(matches!(
            to_canonical(&i128::MIN),
            Err(JcsError::UnsafeInteger(_))
        ));
        assert!(matches!(
            to_canonical(&u128::MAX),
            Err(JcsError::UnsafeInteger(_))
        ));
        assert_eq!(to_canonical(&(1_u64 << 53)).unwrap(), b"9007199254740992");
    }

    /// RFC 8785 section 3.2.2: the example input and its canonical output.
    #[test]
    fn rfc8785_section_3_2_2_example() {
        let input = r#"{
          "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
          "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
          "literals": [null, true, false]
        }"#;
        let value: Value = serde_json::from_str(input).unwrap();
        assert_eq!(
            canonical_text(&value),
            r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#
        );
    }

    /// RFC 8785 section 3.2.3: keys sort by UTF-16 code units, so the emoji
    /// (a surrogate pair, U+D83D...) comes before U+FB33.
    #[test]
    fn rfc8785_section_3_2_3_sorting() {
        let input = r#"{
          "\u20ac": "Euro Sign",
          "\r": "Carriage Return",
          "\ufb33": "Hebrew Letter Dalet With Dagesh",
          "1": "One",
          "\ud83d\ude00": "Emoji: Grinning Face",
          "\u0080": "Control",
          "\u00f6": "Latin Small Letter O With Diaeresis"
        }"#;
        let value: Value = serde_json::from_str(input).unwrap();
        assert_eq!(
            canonical_text(&value),
            "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{80}\":\"Control\",\
             \"ö\":\"Latin Small Letter O With Diaeresis\",\"€\":\"Euro Sign\",\
             \"😀\":\"Emoji: Grinning Face\",\"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}"
        );
    }

    #[test]
    fn strings_escape_only_what_jcs_escapes() {
        let text = "\u{0}\u{1}\u{8}\t\n\u{b}\u{c}\r\u{1f} \"\\/\u{7f}\u{80}\u{2028}\u{2029}中文😀";
        let expected = "\"\\u0000\\u0001\\b\\t\\n\\u000b\\f\\r\\u001f \\\"\\\\/\u{7f}\u{80}\u{2028}\u{2029}中文😀\"";
        assert_eq!(canonical_text(&json!(text)), expected);
        assert_eq!(to_canonical(text).unwrap(), expected.as_bytes());
    }

    #[test]
    fn nested_objects_sort_at_every_level() {
        let value = json!({"b": {"z": 1, "a": [{"y": true, "x": null}]}, "a": "first"});
        assert_eq!(
            canonical_text(&value),
            r#"{"a":"first","b":{"a":[{"x":null,"y":true}],"z":1}}"#
        );
        assert_eq!(canonical_text(&json!({})), "{}");
        assert_eq!(canonical_text(&json!([])), "[]");
    }

    #[test]
    fn streaming_refuses_keys_out_of_order() {
        #[derive(Serialize)]
        struct Unsorted {
            b: u8,
            a: u8,
        }
        assert_eq!(
            to_canonical(&Unsorted { b: 1, a: 2 }),
            Err(JcsError::KeyOrder {
                previous: "b".to_owned(),
                key: "a".to_owned()
            })
        );

        // UTF-8 order (a BTreeMap's) is not UTF-16 order.
        let mut map = std::collections::BTreeMap::new();
        map.insert("\u{fb33}", 1);
        map.insert("😀", 2);
        assert!(matches!(to_canonical(&map), Err(JcsError::KeyOrder { .. })));

        #[derive(Serialize)]
        struct Sorted {
            a: Vec<Unsorted>,
        }
        assert!(matches!(
            to_canonical(&Sorted {
                a: vec![Unsorted { b: 1, a: 2 }]
            }),
            Err(JcsError::KeyOrder { .. })
        ));
    }

    #[test]
    fn streaming_handles_escaped_keys_and_nesting() {
        let mut map = std::collections::BTreeMap::new();
        map.insert("\"quoted\"".to_owned(), json!({"inner": 1}));
        map.insert("\n".to_owned(), json!([1, 2]));
        map.insert("plain".to_owned(), json!(null));
        let value = serde_json::to_value(&map).unwrap();
        assert_eq!(
            to_canonical(&map).unwrap(),
            canonicalize_value(&value).unwrap()
        );
    }
}
