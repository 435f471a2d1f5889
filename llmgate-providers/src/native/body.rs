//! A client's JSON body with the gateway's decisions written in, built without rebuilding it.
//!
//! The body is read once at its top level, each field's name and value borrowed from the
//! client's bytes (no map, no copies). The upstream body is then written straight out: the
//! gateway's own fields first, then every client field the gateway did not write, its value
//! copied as the client's text.
//!
//! Invariants:
//! - A name the gateway writes is sent once, with the gateway's value: every client copy of it
//!   is dropped, whatever its spelling (`"mod\u0065l"` is `model`).
//! - A name the client sent twice is sent once, with its last value (what the gateway read
//!   before this module, and what most JSON readers keep).
//! - Everything else is kept, in the client's order.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use llmgate_core::{Error, Result};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// A body's top-level fields, each name unescaped and each value the client's JSON text, both
/// borrowed from the body where they can be.
struct TopLevel<'a> {
    fields: Vec<(Cow<'a, str>, &'a RawValue)>,
}

impl<'a> TopLevel<'a> {
    /// The value the client gave `name` (its last one, if it gave several).
    fn get(&self, name: &str) -> Option<&'a RawValue> {
        let mut fields = self.fields.iter().rev();
        fields.find(|(key, _)| key == name).map(|(_, value)| *value)
    }
}

/// The upstream body being written: the gateway's fields so far, then [`Rewrite::finish`]
/// adds the client's.
pub(crate) struct Rewrite<'a> {
    client: TopLevel<'a>,
    out: Vec<u8>,
    written: Vec<&'static str>,
}

impl<'a> Rewrite<'a> {
    /// The client's `body` (a JSON object) read at its top level, with nothing written yet.
    pub(crate) fn of(body: &'a [u8]) -> Result<Self> {
        let client: TopLevel<'a> = serde_json::from_slice(body)
            .map_err(|error| Error::invalid_request(format!("Invalid request body: {error}")))?;
        let mut out = Vec::with_capacity(body.len() + 64);
        out.push(b'{');
        Ok(Self {
            client,
            out,
            written: Vec::new(),
        })
    }

    /// Write `name` with the gateway's `value`; each name once.
    pub(crate) fn set(&mut self, name: &'static str, value: impl serde::Serialize) -> Result<()> {
        debug_assert!(!self.written.contains(&name), "{name} written twice");
        self.key(name, true)?;
        serde_json::to_writer(&mut self.out, &value).map_err(internal)?;
        self.written.push(name);
        Ok(())
    }

    /// The output cap `name` no higher than `cap` (the one the hold was computed for); set to
    /// `cap` when the client left it out or sent something that is not a count.
    pub(crate) fn cap(&mut self, name: &'static str, cap: Option<u32>) -> Result<()> {
        let Some(cap) = cap else {
            return Ok(());
        };
        let asked = self
            .client
            .get(name)
            .and_then(|raw| serde_json::from_str::<u64>(raw.get()).ok());
        let capped = asked.map_or(u64::from(cap), |asked| asked.min(u64::from(cap)));
        self.set(name, capped)
    }

    /// The whole body: the gateway's fields, then the client's others as they came.
    pub(crate) fn finish(mut self) -> Result<Vec<u8>> {
        let fields = std::mem::take(&mut self.client.fields);
        // A few names are compared pairwise (no allocation); many are hashed, so a hostile
        // body of a million names costs linear time, not quadratic.
        let hashed = (fields.len() > PAIRWISE_UP_TO).then(|| last_of_each_name(&fields));
        let is_last = |index: usize| match &hashed {
            Some(last) => last[index],
            None => !fields[index + 1..]
                .iter()
                .any(|(other, _)| *other == fields[index].0),
        };
        for (index, (name, value)) in fields.iter().enumerate() {
            let written = self.written.iter().any(|own| own == name);
            if written || !is_last(index) {
                continue;
            }
            self.key(name, matches!(name, Cow::Borrowed(_)))?;
            self.out.extend_from_slice(value.get().as_bytes());
        }
        self.out.push(b'}');
        Ok(self.out)
    }

    /// `"name":`, after a comma unless it is the first field. A plain name is copied as it
    /// is: the gateway's own are plain, and so is a client's name that serde_json borrowed
    /// (it borrows only a name without escapes, and refuses raw control characters). A name
    /// that had escapes is escaped again.
    fn key(&mut self, name: &str, plain: bool) -> Result<()> {
        if self.out.len() > 1 {
            self.out.push(b',');
        }
        if plain {
            self.out.push(b'"');
            self.out.extend_from_slice(name.as_bytes());
            self.out.push(b'"');
        } else {
            serde_json::to_writer(&mut self.out, name).map_err(internal)?;
        }
        self.out.push(b':');
        Ok(())
    }
}

/// Up to this many top-level names, duplicates are found by comparing names pairwise.
const PAIRWISE_UP_TO: usize = 32;

/// Whether each field is the last of its name, by hashing the names.
fn last_of_each_name(fields: &[(Cow<'_, str>, &RawValue)]) -> Vec<bool> {
    let mut seen = HashSet::with_capacity(fields.len());
    let mut last: Vec<bool> = (fields.iter().rev())
        .map(|(name, _)| seen.insert(name.as_ref()))
        .collect();
    last.reverse();
    last
}

fn internal(error: serde_json::Error) -> Error {
    Error::internal(error.to_string())
}

impl<'de> serde::Deserialize<'de> for TopLevel<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(FieldsVisitor)
    }
}

struct FieldsVisitor;

impl<'de> Visitor<'de> for FieldsVisitor {
    type Value = TopLevel<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
        let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
        while let Some((Name(name), value)) = map.next_entry::<Name<'de>, &'de RawValue>()? {
            fields.push((name, value));
        }
        Ok(TopLevel { fields })
    }
}

/// A field name, borrowed unless it had escapes to undo (`Cow<str>`'s own `Deserialize`
/// always copies).
struct Name<'a>(Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(NameVisitor)
    }
}

struct NameVisitor;

impl<'de> Visitor<'de> for NameVisitor {
    type Value = Name<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_borrowed_str<E: de::Error>(self, name: &'de str) -> Result<Self::Value, E> {
        Ok(Name(Cow::Borrowed(name)))
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<Self::Value, E> {
        Ok(Name(Cow::Owned(name.to_owned())))
    }

    fn visit_string<E: de::Error>(self, name: String) -> Result<Self::Value, E> {
        Ok(Name(Cow::Owned(name)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// The body as the Messages pass-through writes it: model, cap 4096, stream.
    fn rewritten(body: &str) -> Result<Vec<u8>> {
        let mut out = Rewrite::of(body.as_bytes())?;
        out.set("model", "up")?;
        out.cap("max_tokens", Some(4096))?;
        out.set("stream", true)?;
        out.finish()
    }

    fn sent(body: &str) -> Value {
        serde_json::from_slice(&rewritten(body).unwrap()).unwrap()
    }

    #[test]
    fn the_gateway_fields_come_first_and_the_rest_as_the_client_wrote_them() {
        let body = r#"{"model":"claude","max_tokens":100,"messages":[{"role":"user","content":"hi"}],"z":{"a":[1,2,{"b":null}]}}"#;
        let out = rewritten(body).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"model":"up","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"hi"}],"z":{"a":[1,2,{"b":null}]}}"#
        );
    }

    #[test]
    fn a_missing_cap_is_set_and_a_larger_one_lowered() {
        assert_eq!(sent(r#"{"model":"m"}"#)["max_tokens"], 4096);
        assert_eq!(sent(r#"{"max_tokens":32000}"#)["max_tokens"], 4096);
        assert_eq!(sent(r#"{"max_tokens":"lots"}"#)["max_tokens"], 4096);
        assert_eq!(sent(r#"{"max_tokens":1}"#)["max_tokens"], 1);
    }

    #[test]
    fn no_cap_leaves_the_clients_value() {
        let body = r#"{"max_tokens":32000,"model":"m"}"#;
        let mut out = Rewrite::of(body.as_bytes()).unwrap();
        out.set("model", "up").unwrap();
        out.cap("max_tokens", None).unwrap();
        let sent: Value = serde_json::from_slice(&out.finish().unwrap()).unwrap();
        assert_eq!(sent, json!({"model": "up", "max_tokens": 32000}));
    }

    #[test]
    fn duplicate_names_are_sent_once_with_the_last_value() {
        let out = rewritten(
            r#"{"max_tokens":10,"model":"a","x":1,"max_tokens":99999,"model":"b","x":2,"stream":false}"#,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"model":"up","max_tokens":4096,"stream":true,"x":2}"#
        );
    }

    #[test]
    fn many_names_are_deduplicated_as_a_few_are() {
        let mut body = String::from("{\"max_tokens\":1");
        for i in 0..100 {
            body.push_str(&format!(",\"f{}\":{i}", i % 40));
        }
        body.push_str(",\"model\":\"m\"}");
        let sent = sent(&body);
        let fields = sent.as_object().unwrap();
        assert_eq!(fields.len(), 3 + 40);
        assert_eq!(sent["max_tokens"], 1);
        assert_eq!(sent["f0"], 80);
        assert_eq!(sent["f39"], 79);
        let out = String::from_utf8(rewritten(&body).unwrap()).unwrap();
        assert_eq!(out.matches("\"f0\":").count(), 1);
        // In the client's order of their last values: f20..f39 (from 60..79), then f0..f19.
        assert!(out.find("\"f20\":60").unwrap() < out.find("\"f0\":80").unwrap());
    }

    #[test]
    fn escaped_names_are_read_as_what_they_spell() {
        let body =
            r#"{"mod\u0065l":"sneaky","max\u005ftokens":99999,"a\"b\\c":1,"x\u0001y":2,"é":3}"#;
        assert_eq!(
            sent(body),
            json!({"model": "up", "max_tokens": 4096, "stream": true, "a\"b\\c": 1,
                   "x\u{1}y": 2, "é": 3})
        );
        // A name that had escapes is escaped again; a plain one is copied.
        let out = String::from_utf8(rewritten(body).unwrap()).unwrap();
        assert!(
            out.ends_with(r#","a\"b\\c":1,"x\u0001y":2,"é":3}"#),
            "{out}"
        );
    }

    #[test]
    fn whitespace_around_and_inside_values_is_harmless() {
        let body = "\n {  \"model\" : \"m\" ,\r\n \"max_tokens\"\t:\t 7 ,\"meta\" : { \"k\" : [ 1 , 2 ] }  } \n";
        let out = rewritten(body).unwrap();
        let sent: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            sent,
            json!({"model": "up", "max_tokens": 7, "stream": true, "meta": {"k": [1, 2]}})
        );
    }

    #[test]
    fn an_empty_object_gets_only_the_gateway_fields() {
        assert_eq!(
            String::from_utf8(rewritten("{}").unwrap()).unwrap(),
            r#"{"model":"up","max_tokens":4096,"stream":true}"#
        );
    }

    #[test]
    fn a_body_that_is_not_an_object_is_refused() {
        for body in ["[1]", "\"s\"", "{\"a\":", "{\"a\":1} x", ""] {
            assert!(rewritten(body).is_err(), "{body:?}");
        }
    }

    #[test]
    fn nested_names_like_the_gateways_are_left_alone() {
        let sent = sent(r#"{"metadata":{"model":"inner","max_tokens":5,"stream":false}}"#);
        assert_eq!(
            sent["metadata"],
            json!({"model": "inner", "max_tokens": 5, "stream": false})
        );
    }
}
