//! Protobuf's wire format, the few pieces OTLP's trace messages need: varints, keys,
//! length-delimited fields, and OpenTelemetry's `KeyValue`. Protobuf puts a message's length
//! in front of it, so each writer here has a twin that computes that length first.

/// Protobuf wire types.
pub(super) const VARINT: u8 = 0;
pub(super) const FIXED64: u8 = 1;
pub(super) const LEN: u8 = 2;
pub(super) const FIXED32: u8 = 5;

/// A value as it is written.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Ref<'a> {
    Text(&'a str),
    Int(i64),
    Bool(bool),
}

impl<'a> From<&'a str> for Ref<'a> {
    fn from(text: &'a str) -> Self {
        Ref::Text(text)
    }
}

impl<'a> From<&'a String> for Ref<'a> {
    fn from(text: &'a String) -> Self {
        Ref::Text(text)
    }
}

impl From<i64> for Ref<'_> {
    fn from(n: i64) -> Self {
        Ref::Int(n)
    }
}

impl From<u64> for Ref<'_> {
    fn from(n: u64) -> Self {
        Ref::Int(i64::try_from(n).unwrap_or(i64::MAX))
    }
}

impl From<bool> for Ref<'_> {
    fn from(b: bool) -> Self {
        Ref::Bool(b)
    }
}

/// A `KeyValue` as field `field`: its key, and its value as an `AnyValue`. Always inlined:
/// a span's attributes are set with their names known where they are set, and inlined there
/// the name's length is a constant and its copy a few moves (counted: about a third of a
/// span's attribute cost went to these calls).
#[inline(always)]
pub(super) fn key_value(out: &mut Vec<u8>, field: u32, name: &str, value: Ref<'_>) {
    let len = key_value_len(name, value);
    if field < 16 && len < 0x80 {
        // Every key and length fits in one byte (all of a span's attributes but a long
        // text): a few whole-slice copies instead of a byte at a time.
        key_value_short(out, field, len, name, value);
        return;
    }
    header(out, field, len);
    string(out, 1, name);
    header(out, 2, any_value_len(value));
    match value {
        Ref::Text(text) => string(out, 1, text),
        Ref::Bool(b) => {
            key(out, 2, VARINT);
            varint(out, u64::from(b));
        }
        Ref::Int(n) => {
            key(out, 3, VARINT);
            varint(out, int64(n));
        }
    }
}

/// [`key_value`] when `field` is below 16 and the whole `KeyValue` (`len`) below 128 bytes.
#[inline(always)]
fn key_value_short(out: &mut Vec<u8>, field: u32, len: usize, name: &str, value: Ref<'_>) {
    // The casts are exact: the caller checked every value below 0x80.
    let byte = |n: usize| n as u8;
    out.extend_from_slice(&[
        byte(field as usize) << 3 | LEN,
        byte(len),
        0x0a,
        byte(name.len()),
    ]);
    out.extend_from_slice(name.as_bytes());
    match value {
        Ref::Text(text) => {
            let any_len = byte(2 + text.len());
            out.extend_from_slice(&[0x12, any_len, 0x0a, byte(text.len())]);
            out.extend_from_slice(text.as_bytes());
        }
        Ref::Bool(b) => out.extend_from_slice(&[0x12, 2, 0x10, u8::from(b)]),
        Ref::Int(n) => {
            let n = int64(n);
            out.extend_from_slice(&[0x12, byte(1 + varint_len(n)), 0x18]);
            varint(out, n);
        }
    }
}

#[inline(always)]
fn key_value_len(name: &str, value: Ref<'_>) -> usize {
    field_len(1, name.len()) + field_len(2, any_value_len(value))
}

#[inline(always)]
fn any_value_len(value: Ref<'_>) -> usize {
    match value {
        Ref::Text(text) => field_len(1, text.len()),
        Ref::Bool(_) => 2,
        Ref::Int(n) => 1 + varint_len(int64(n)),
    }
}

/// int64 is written as its two's complement.
fn int64(n: i64) -> u64 {
    n as u64
}

#[inline]
pub(super) fn key(out: &mut Vec<u8>, field: u32, wire_type: u8) {
    varint(out, u64::from(field << 3 | u32::from(wire_type)));
}

#[inline]
pub(super) fn varint(out: &mut Vec<u8>, mut n: u64) {
    // Field keys and most lengths fit in one byte.
    if n < 0x80 {
        out.push(n as u8);
        return;
    }
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

#[inline]
pub(super) fn varint_len(n: u64) -> usize {
    let bits = 64 - (n | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// The bytes of a length-delimited field `field` whose body is `len` bytes.
#[inline]
pub(super) fn field_len(field: u32, len: usize) -> usize {
    varint_len(u64::from(field << 3)) + varint_len(len as u64) + len
}

/// The key and length of a length-delimited field; its body follows.
#[inline]
pub(super) fn header(out: &mut Vec<u8>, field: u32, len: usize) {
    key(out, field, LEN);
    varint(out, len as u64);
}

#[inline]
pub(super) fn bytes(out: &mut Vec<u8>, field: u32, data: &[u8]) {
    header(out, field, data.len());
    out.extend_from_slice(data);
}

#[inline]
pub(super) fn string(out: &mut Vec<u8>, field: u32, text: &str) {
    bytes(out, field, text.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_are_little_endian_base_128_and_measured_right() {
        let mut out = Vec::new();
        varint(&mut out, 1);
        varint(&mut out, 300);
        assert_eq!(out, [0x01, 0xac, 0x02]);
        for n in [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut out = Vec::new();
            varint(&mut out, n);
            assert_eq!(out.len(), varint_len(n), "{n}");
        }
    }

    #[test]
    fn the_short_key_value_writes_what_the_general_one_does() {
        for value in [
            Ref::Text("gpt-4o"),
            Ref::Text(""),
            Ref::Int(-5),
            Ref::Int(0),
            Ref::Int(300),
            Ref::Bool(false),
        ] {
            let mut short = Vec::new();
            key_value(&mut short, 9, "llmgate.model", value);
            let mut general = Vec::new();
            header(&mut general, 9, key_value_len("llmgate.model", value));
            string(&mut general, 1, "llmgate.model");
            header(&mut general, 2, any_value_len(value));
            match value {
                Ref::Text(text) => string(&mut general, 1, text),
                Ref::Bool(b) => {
                    key(&mut general, 2, VARINT);
                    varint(&mut general, u64::from(b));
                }
                Ref::Int(n) => {
                    key(&mut general, 3, VARINT);
                    varint(&mut general, int64(n));
                }
            }
            assert_eq!(short, general, "{value:?}");
        }
    }

    #[test]
    fn a_key_value_is_as_long_as_its_length_says() {
        for value in [
            Ref::Text("gpt-4o"),
            Ref::Text(&"x".repeat(300)),
            Ref::Int(-5),
            Ref::Int(i64::MAX),
            Ref::Bool(true),
        ] {
            let mut out = Vec::new();
            key_value(&mut out, 9, "gen_ai.request.model", value);
            assert_eq!(
                out.len(),
                field_len(9, key_value_len("gen_ai.request.model", value))
            );
        }
    }
}
