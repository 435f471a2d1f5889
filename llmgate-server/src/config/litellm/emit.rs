//! The llmgate YAML a translation produces: sections of fields, each with an optional comment
//! saying where its value came from, rendered as text. Every field remembers the LiteLLM path
//! it came from, so a problem llmgate finds later can be reported where the operator wrote it.

use std::fmt::Write as _;

/// A value as it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Scalar {
    /// A string, quoted when YAML would read it as something else.
    Text(String),
    /// A number or boolean, written as it is.
    Plain(String),
    /// A list of strings, written in flow style.
    List(Vec<String>),
}

/// `key: value  # note`.
#[derive(Debug, Clone)]
pub(super) struct Field {
    pub(super) key: &'static str,
    pub(super) value: Scalar,
    pub(super) note: Option<String>,
    /// The LiteLLM path the value came from.
    pub(super) origin: String,
}

impl Field {
    pub(super) fn new(key: &'static str, value: Scalar, origin: impl Into<String>) -> Self {
        Self {
            key,
            value,
            note: None,
            origin: origin.into(),
        }
    }

    pub(super) fn text(
        key: &'static str,
        value: impl Into<String>,
        origin: impl Into<String>,
    ) -> Self {
        Self::new(key, Scalar::Text(value.into()), origin)
    }

    pub(super) fn plain(
        key: &'static str,
        value: impl ToString,
        origin: impl Into<String>,
    ) -> Self {
        Self::new(key, Scalar::Plain(value.to_string()), origin)
    }

    pub(super) fn note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }
}

/// One entry of a list section (a provider, a model).
#[derive(Debug, Clone, Default)]
pub(super) struct Item {
    pub(super) fields: Vec<Field>,
    /// A comment line above the entry.
    pub(super) note: Option<String>,
    pub(super) origin: String,
}

/// The whole translated config.
#[derive(Debug, Default)]
pub(super) struct Output {
    pub(super) server: Vec<Field>,
    pub(super) storage: Vec<Field>,
    pub(super) providers: Vec<Item>,
    pub(super) models: Vec<Item>,
    pub(super) routing: Vec<Field>,
}

/// Rendered YAML and, for each llmgate path written, the LiteLLM path it came from.
pub(super) struct Rendered {
    pub(super) yaml: String,
    pub(super) origins: Vec<(String, String)>,
}

impl Output {
    pub(super) fn render(&self) -> Rendered {
        let mut out = Rendered {
            yaml: String::from(
                "# llmgate config translated from a LiteLLM config.yaml (`llmgate import litellm`).\n\
                 # Comments say where a value was derived rather than copied.\n",
            ),
            origins: Vec::new(),
        };
        out.section("server", &self.server);
        out.section("storage", &self.storage);
        out.list("providers", &self.providers);
        out.list("models", &self.models);
        out.section("routing", &self.routing);
        out
    }
}

impl Rendered {
    fn section(&mut self, name: &str, fields: &[Field]) {
        if fields.is_empty() {
            return;
        }
        let _ = writeln!(self.yaml, "{name}:");
        self.fields(name, fields, "  ", "  ");
    }

    fn list(&mut self, name: &str, items: &[Item]) {
        if items.is_empty() {
            return;
        }
        let _ = writeln!(self.yaml, "{name}:");
        for (i, item) in items.iter().enumerate() {
            let path = format!("{name}[{i}]");
            self.origins.push((path.clone(), item.origin.clone()));
            if let Some(note) = &item.note {
                let _ = writeln!(self.yaml, "  # {}", one_line(note));
            }
            self.fields(&path, &item.fields, "  - ", "    ");
        }
    }

    fn fields(&mut self, parent: &str, fields: &[Field], first: &str, rest: &str) {
        for (i, field) in fields.iter().enumerate() {
            let indent = if i == 0 { first } else { rest };
            let _ = write!(self.yaml, "{indent}{}: {}", field.key, render(&field.value));
            if let Some(note) = &field.note {
                let _ = write!(self.yaml, "  # {}", one_line(note));
            }
            self.yaml.push('\n');
            self.origins
                .push((format!("{parent}.{}", field.key), field.origin.clone()));
        }
    }
}

fn one_line(note: &str) -> String {
    note.replace(['\n', '\r'], " ")
}

fn render(value: &Scalar) -> String {
    match value {
        Scalar::Text(text) => quoted(text),
        Scalar::Plain(text) => text.clone(),
        Scalar::List(items) => {
            let items: Vec<String> = items.iter().map(|item| quoted(item)).collect();
            format!("[{}]", items.join(", "))
        }
    }
}

/// A string as YAML reads it back unchanged: plain when that is unambiguous, else a JSON
/// string (which is valid double-quoted YAML).
pub(super) fn quoted(text: &str) -> String {
    let safe_char = |c: char| c.is_ascii_alphanumeric() || "_./:@${}+-".contains(c);
    let starts_well = text.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_');
    let plain =
        starts_well && text.chars().all(safe_char) && !text.ends_with(':') && !looks_typed(text);
    if plain {
        text.to_owned()
    } else {
        serde_json::to_string(text).unwrap_or_else(|_| format!("\"{text}\""))
    }
}

/// Whether YAML would read the plain text as a number, boolean or null.
fn looks_typed(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    matches!(
        lower.as_str(),
        "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n" | "null" | "~"
    ) || text.parse::<f64>().is_ok()
        || text.starts_with("0x")
        || text.starts_with("0o")
        || text
            .chars()
            .all(|c| c.is_ascii_digit() || c == '_' || c == ':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_that_yaml_would_retype_are_quoted() {
        assert_eq!(quoted("gpt-4o"), "gpt-4o");
        assert_eq!(
            quoted("os.environ/OPENAI_API_KEY"),
            "os.environ/OPENAI_API_KEY"
        );
        assert_eq!(
            quoted("http://127.0.0.1:8000/v1"),
            "http://127.0.0.1:8000/v1"
        );
        assert_eq!(quoted("true"), "\"true\"");
        assert_eq!(quoted("1e3"), "\"1e3\"");
        assert_eq!(quoted("a: b"), "\"a: b\"");
        assert_eq!(quoted("*"), "\"*\"");
        assert_eq!(quoted(""), "\"\"");
        assert_eq!(quoted("say \"hi\""), "\"say \\\"hi\\\"\"");
    }

    #[test]
    fn rendering_keeps_origins_for_items_and_fields() {
        let output = Output {
            server: vec![Field::text(
                "master_key",
                "os.environ/K",
                "general_settings.master_key",
            )],
            models: vec![Item {
                fields: vec![
                    Field::text("name", "m", "model_list[0].model_name"),
                    Field::plain("rpm", 5, "model_list[0].litellm_params.rpm").note("why"),
                ],
                note: Some("from model_list[0]".to_owned()),
                origin: "model_list[0]".to_owned(),
            }],
            ..Output::default()
        };
        let rendered = output.render();
        assert!(
            rendered.yaml.ends_with(
                "server:\n  master_key: os.environ/K\nmodels:\n  # from model_list[0]\n  - name: m\n    rpm: 5  # why\n"
            ),
            "{}",
            rendered.yaml
        );
        assert!(rendered.origins.contains(&(
            "models[0].rpm".to_owned(),
            "model_list[0].litellm_params.rpm".to_owned()
        )));
    }
}
