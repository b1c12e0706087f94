//! What the operator says about a resource, once: each becomes an event and an outbound notification.

use crate::api::RestartKind;
use crate::reasons::Reason;

/// An event to publish about the resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// A warning (something to act on) or a normal event.
    pub warning: bool,
    /// The reason.
    pub reason: Reason,
    /// The message; never a value.
    pub message: String,
    /// What the event is about beyond its reason (a version, a workload): events with the same reason but
    /// another subject are distinct events, not a repeat counted in one event's series.
    pub subject: Option<String>,
    /// What a notification says besides the reason and the message (never a value).
    pub facts: Facts,
}

/// The structured facts of a [`Note`], for outbound notifications: identifiers only, never a value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// The store version the note is about (a rotation's new version, the version a restart is for).
    pub version_id: Option<String>,
    /// The rotation task (a rotation's, or the failed one's).
    pub task_id: Option<String>,
    /// The synced Secret's name, when the note is about a write of it.
    pub secret: Option<String>,
    /// Consecutive failed attempts, this one included (a failure).
    pub failed_attempts: Option<u32>,
    /// The failure's code (a failure).
    pub error_code: Option<String>,
    /// The restarted workload (a restart).
    pub workload: Option<(RestartKind, String)>,
}

impl Note {
    pub(crate) fn warning(reason: Reason, message: String) -> Note {
        Note {
            warning: true,
            reason,
            message,
            subject: None,
            facts: Facts::default(),
        }
    }

    pub(crate) fn normal(reason: Reason, message: String) -> Note {
        Note {
            warning: false,
            reason,
            message,
            subject: None,
            facts: Facts::default(),
        }
    }

    pub(crate) fn about(self, subject: impl Into<String>) -> Note {
        Note {
            subject: Some(subject.into()),
            ..self
        }
    }

    pub(crate) fn with(self, facts: Facts) -> Note {
        Note { facts, ..self }
    }

    /// The event's action: the reason, and the subject when there is one.
    pub fn action(&self) -> String {
        match &self.subject {
            Some(s) => format!("{} {s}", self.reason.as_str())
                .chars()
                .take(128)
                .collect(),
            None => self.reason.as_str().to_owned(),
        }
    }
}
