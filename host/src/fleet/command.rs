//! [`Command`]: one instruction to every instance of a fleet, and
//! [`FleetKey`], which signs and verifies it.
//!
//! On the wire (the control channel, and the desired-state record in
//! Redis) a command travels as a [`Signed`] envelope: the command's JSON
//! text exactly as it was signed, and the hex HMAC-SHA256 of that text
//! under the fleet key. Verifying the text as received, rather than a
//! re-serialisation of it, leaves no room for two encodings of one command.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use thiserror::Error;

use crate::plugins::PluginKind;
use crate::secret::Secret;

/// The shortest fleet key accepted, in bytes.
pub const MIN_KEY_BYTES: usize = 16;

/// What a command asks of every instance that runs its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Make the named version live.
    Install,
    /// Make the named (earlier) version live again.
    Rollback,
    /// Make the named shadow candidate live (the shadow's promotion).
    Promote,
    /// Run the named version as a shadow of the live one.
    Shadow,
    /// End the running shadow.
    ShadowStop,
}

impl Action {
    /// Whether the command names the version every instance should run
    /// (the kind's desired state), rather than a shadow to start or stop.
    pub fn sets_desired(self) -> bool {
        matches!(self, Action::Install | Action::Rollback | Action::Promote)
    }

    /// The action as it is spelled on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Install => "install",
            Action::Rollback => "rollback",
            Action::Promote => "promote",
            Action::Shadow => "shadow",
            Action::ShadowStop => "shadow_stop",
        }
    }
}

/// One fleet command; for install, rollback and promote also the kind's
/// desired-state record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Command {
    /// The plugin kind it is for.
    pub kind: PluginKind,
    /// What to do.
    pub action: Action,
    /// Hex SHA-256 of the component (its bytes are stored under it); empty
    /// for `shadow_stop`.
    pub sha256: String,
    /// Per kind, one higher for every command issued: an instance takes
    /// only a generation higher than the last it took.
    pub generation: u64,
    /// When it was issued (RFC 3339, milliseconds, `Z`).
    pub issued_at: String,
    /// The instance id of the process whose admin API issued it.
    pub issued_by: String,
    /// For a shadow: how long it runs, in seconds (until stopped if absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_secs: Option<f64>,
}

/// A command as it travels: its JSON text and the text's signature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signed {
    /// The command's JSON, exactly as signed.
    pub command: String,
    /// Hex HMAC-SHA256 of `command` under the fleet key.
    #[serde(default)]
    pub signature: Option<String>,
}

/// Why an instance did not take a command. Each is logged and counted by
/// its [`Rejection::label`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Rejection {
    /// Not a signed envelope holding a command.
    #[error("not a signed fleet command: {0}")]
    Malformed(String),
    /// The envelope carries no signature.
    #[error("the command carries no signature")]
    Unsigned,
    /// The signature is not the fleet key's for this text.
    #[error("the command's signature does not match the fleet key")]
    BadSignature,
    /// Its generation is not higher than the last this instance took.
    #[error("generation {got} of the {kind} is not newer than {last}, the last taken (a replay?)")]
    Replayed {
        /// The kind.
        kind: PluginKind,
        /// The command's generation.
        got: u64,
        /// The last generation this instance took.
        last: u64,
    },
    /// The stored bytes do not hash to the command's SHA-256.
    #[error("the stored component hashes to {actual}, not {expected}")]
    HashMismatch {
        /// The command's SHA-256.
        expected: String,
        /// What the stored bytes hash to.
        actual: String,
    },
    /// No component is stored under the command's SHA-256.
    #[error("no component is stored under {0}")]
    BlobMissing(String),
}

impl Rejection {
    /// The counter a rejection is counted under.
    pub fn label(&self) -> &'static str {
        match self {
            Rejection::Malformed(_) => "malformed",
            Rejection::Unsigned => "unsigned",
            Rejection::BadSignature => "bad_signature",
            Rejection::Replayed { .. } => "replayed",
            Rejection::HashMismatch { .. } => "hash_mismatch",
            Rejection::BlobMissing(_) => "blob_missing",
        }
    }
}

/// The fleet key (`TICKSTOCK_FLEET_KEY`): signs and verifies commands. Its
/// own secret, never the admin token; never printed.
#[derive(Clone)]
pub struct FleetKey(Secret);

impl FleetKey {
    /// A key of at least [`MIN_KEY_BYTES`] bytes.
    pub fn new(key: Secret) -> Result<FleetKey, String> {
        if key.expose().len() < MIN_KEY_BYTES {
            return Err(format!(
                "the fleet key must be at least {MIN_KEY_BYTES} bytes long"
            ));
        }
        Ok(FleetKey(key))
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes a key of any length, so this cannot fail.
        <Hmac<Sha256> as Mac>::new_from_slice(self.0.expose().as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"))
    }

    /// `command`, signed, as the JSON text that travels.
    pub fn sign(&self, command: &Command) -> String {
        // A plain struct of strings and numbers always serialises.
        let text = serde_json::to_string(command).unwrap_or_default();
        let mut mac = self.mac();
        mac.update(text.as_bytes());
        let signed = Signed {
            signature: Some(hex::encode(mac.finalize().into_bytes())),
            command: text,
        };
        serde_json::to_string(&signed).unwrap_or_default()
    }

    /// The command in `text`, if `text` is a command signed with this key.
    /// The comparison takes constant time.
    pub fn verify(&self, text: &str) -> Result<Command, Rejection> {
        let signed: Signed =
            serde_json::from_str(text).map_err(|e| Rejection::Malformed(e.to_string()))?;
        let signature = match signed.signature.as_deref() {
            None | Some("") => return Err(Rejection::Unsigned),
            Some(hex_text) => hex::decode(hex_text).map_err(|_| Rejection::BadSignature)?,
        };
        let mut mac = self.mac();
        mac.update(signed.command.as_bytes());
        mac.verify_slice(&signature)
            .map_err(|_| Rejection::BadSignature)?;
        serde_json::from_str(&signed.command).map_err(|e| Rejection::Malformed(e.to_string()))
    }
}

impl std::fmt::Debug for FleetKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FleetKey(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> FleetKey {
        FleetKey::new(Secret::new(k)).unwrap()
    }

    fn command() -> Command {
        Command {
            kind: PluginKind::Normalizer,
            action: Action::Install,
            sha256: "ab".repeat(32),
            generation: 7,
            issued_at: "2026-12-05T10:00:00.000Z".into(),
            issued_by: "test".into(),
            for_secs: None,
        }
    }

    #[test]
    fn a_signed_command_verifies_and_reads_back() {
        let k = key("0123456789abcdef-fleet");
        assert_eq!(k.verify(&k.sign(&command())).unwrap(), command());
    }

    #[test]
    fn another_key_a_changed_text_or_no_signature_is_refused() {
        let (k, other) = (key("0123456789abcdef-fleet"), key("0123456789abcdef-other"));
        let text = k.sign(&command());
        assert_eq!(other.verify(&text), Err(Rejection::BadSignature));

        let mut signed: Signed = serde_json::from_str(&text).unwrap();
        signed.command = signed
            .command
            .replace("\"generation\":7", "\"generation\":8");
        let tampered = serde_json::to_string(&signed).unwrap();
        assert_eq!(k.verify(&tampered), Err(Rejection::BadSignature));

        signed.signature = None;
        let unsigned = serde_json::to_string(&signed).unwrap();
        assert_eq!(k.verify(&unsigned), Err(Rejection::Unsigned));
        let bare = serde_json::to_string(&command()).unwrap();
        assert!(matches!(k.verify(&bare), Err(Rejection::Malformed(_))));
        assert!(matches!(k.verify("not json"), Err(Rejection::Malformed(_))));
    }

    #[test]
    fn short_keys_are_refused_and_keys_never_print() {
        assert!(FleetKey::new(Secret::new("short")).is_err());
        let k = key("0123456789abcdef-fleet");
        assert!(!format!("{k:?}").contains("0123"));
    }
}
