//! Templates for the keys of the synced Secret: literal text with `{{ name }}` placeholders.
//!
//! The grammar is deliberately small: a placeholder is `{{`, optional spaces, one of the known variable
//! names, optional spaces, `}}`. There are no expressions, so a template cannot do anything but place
//! values.

/// The variables a template may use.
pub const VARIABLES: &[&str] = &[
    "username",
    "password",
    "host",
    "port",
    "database",
    "value",
    "versionId",
    "previous.username",
    "previous.password",
    "previous.value",
    "previous.versionId",
];

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Text copied as it is.
    Literal(String),
    /// A variable's value.
    Variable(&'static str),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    segments: Vec<Segment>,
}

/// Why a template was refused. Never contains a value, only the template's own text positions and names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// `{{` without a closing `}}`.
    #[error("unclosed placeholder at byte {at}: every {{{{ needs a matching }}}}")]
    Unclosed {
        /// Byte offset of the `{{`.
        at: usize,
    },
    /// A placeholder names no known variable.
    #[error(
        "unknown variable {name:?} at byte {at}; known: username, password, host, port, database, value, versionId, previous.username, previous.password, previous.value, previous.versionId"
    )]
    UnknownVariable {
        /// The name found (cut to 64 characters).
        name: String,
        /// Byte offset of the `{{`.
        at: usize,
    },
    /// `}}` without an opening `{{`.
    #[error("stray }}}} at byte {at}")]
    Stray {
        /// Byte offset of the `}}`.
        at: usize,
    },
}

impl Template {
    /// Parses a template.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let mut segments = Vec::new();
        let mut rest = text;
        let mut offset = 0usize;
        while !rest.is_empty() {
            let open = rest.find("{{");
            let close = rest.find("}}");
            match (open, close) {
                (None, None) => {
                    segments.push(Segment::Literal(rest.to_owned()));
                    break;
                }
                (None, Some(c)) => return Err(TemplateError::Stray { at: offset + c }),
                (Some(o), Some(c)) if c < o => return Err(TemplateError::Stray { at: offset + c }),
                (Some(o), _) => {
                    if o > 0 {
                        segments.push(Segment::Literal(rest[..o].to_owned()));
                    }
                    let after = &rest[o + 2..];
                    let end = after
                        .find("}}")
                        .ok_or(TemplateError::Unclosed { at: offset + o })?;
                    let name = after[..end].trim_matches(' ');
                    let known = VARIABLES.iter().find(|v| **v == name).ok_or_else(|| {
                        TemplateError::UnknownVariable {
                            name: name.chars().take(64).collect(),
                            at: offset + o,
                        }
                    })?;
                    segments.push(Segment::Variable(known));
                    let consumed = o + 2 + end + 2;
                    rest = &rest[consumed..];
                    offset += consumed;
                }
            }
        }
        Ok(Template { segments })
    }

    /// The variables this template uses, in order of appearance.
    pub fn variables(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.segments.iter().filter_map(|s| match s {
            Segment::Variable(v) => Some(*v),
            Segment::Literal(_) => None,
        })
    }

    /// Whether the template uses a `previous.*` variable (the store's SYSPREVIOUS).
    pub fn uses_previous(&self) -> bool {
        self.variables().any(|v| v.starts_with("previous."))
    }

    /// Renders the template; `lookup` gives each variable's value.
    pub fn render<'a>(&self, lookup: impl Fn(&str) -> &'a str) -> String {
        let mut out = String::new();
        for s in &self.segments {
            match s {
                Segment::Literal(l) => out.push_str(l),
                Segment::Variable(v) => out.push_str(lookup(v)),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(name: &str) -> &'static str {
        match name {
            "username" => "app",
            "password" => "p{{x}}w",
            "host" => "db.svc",
            "port" => "5432",
            _ => "",
        }
    }

    #[test]
    fn renders_placeholders_and_literals() {
        let t = Template::parse("postgresql://{{ username }}:{{password}}@{{  host }}:{{port}}/x")
            .unwrap();
        assert_eq!(t.render(lookup), "postgresql://app:p{{x}}w@db.svc:5432/x");
        assert_eq!(
            t.variables().collect::<Vec<_>>(),
            vec!["username", "password", "host", "port"]
        );
        assert_eq!(Template::parse("plain").unwrap().render(lookup), "plain");
        assert_eq!(Template::parse("").unwrap().render(lookup), "");
    }

    #[test]
    fn refuses_bad_templates() {
        assert_eq!(
            Template::parse("a {{ password"),
            Err(TemplateError::Unclosed { at: 2 })
        );
        assert!(matches!(
            Template::parse("{{ secret }}"),
            Err(TemplateError::UnknownVariable { .. })
        ));
        assert!(matches!(
            Template::parse("{{}}"),
            Err(TemplateError::UnknownVariable { .. })
        ));
        assert_eq!(
            Template::parse("a }} b"),
            Err(TemplateError::Stray { at: 2 })
        );
        assert!(matches!(
            Template::parse("{{ username | upper }}"),
            Err(TemplateError::UnknownVariable { .. })
        ));
    }

    #[test]
    fn previous_variables() {
        let t = Template::parse("{{ value }},{{ previous.value }}").unwrap();
        assert!(t.uses_previous());
        assert!(!Template::parse("{{ value }}").unwrap().uses_previous());
        assert!(matches!(
            Template::parse("{{ previous.secret }}"),
            Err(TemplateError::UnknownVariable { .. })
        ));
    }

    #[test]
    fn unicode_is_kept() {
        let t = Template::parse("ключ={{ host }} ✓").unwrap();
        assert_eq!(t.render(lookup), "ключ=db.svc ✓");
    }
}
