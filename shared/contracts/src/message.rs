//! The trait every contract implements, and the errors of reading one.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Events are facts anyone may subscribe to; tasks are requests addressed to one service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `<entity>.<verb>`, published to the entity's topic.
    Event,
    /// `<service>.<entity>.<request>`, published to the `tasks` topic.
    Task,
}

/// A typed message contract. Implement it with [`crate::event!`] or [`crate::task!`], which
/// check the name at compile time.
/// Contracts are plain data: `Clone` lets a consumer re-run its handler on the same message
/// when its transaction conflicts.
pub trait Message: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    /// The message type, such as `order.placed`.
    const TYPE: &'static str;
    /// The current version; producers always write it.
    const VERSION: u32;
    /// Event or task.
    const KIND: Kind;

    /// Checks the rules that the type system does not (non-empty lists, ranges, formats).
    fn validate(&self) -> Result<(), ContractViolation> {
        Ok(())
    }

    /// Turns the JSON of an older `version` into the JSON of the current one. Contracts that
    /// made a breaking change override it to keep reading yesterday's messages.
    fn upcast(version: u32, data: Value) -> Result<Value, DecodeError> {
        let _ = data;
        Err(DecodeError::UnknownVersion {
            message_type: Self::TYPE.into(),
            version,
        })
    }

    /// Reads the payload of a message of this type written at `version`.
    fn decode(version: u32, data: Value) -> Result<Self, DecodeError> {
        let data = if version == Self::VERSION {
            data
        } else if version < Self::VERSION && version > 0 {
            Self::upcast(version, data)?
        } else {
            return Err(DecodeError::UnknownVersion {
                message_type: Self::TYPE.into(),
                version,
            });
        };
        read(&data)
    }
}

fn read<M: Message>(data: &Value) -> Result<M, DecodeError> {
    checked(M::deserialize(data))
}

/// Reads the JSON text of a message of type `M` at its current version, and checks the
/// contract's rules.
pub(crate) fn read_text<M: Message>(text: &str) -> Result<M, DecodeError> {
    checked(serde_json::from_str(text))
}

fn checked<M: Message>(read: Result<M, serde_json::Error>) -> Result<M, DecodeError> {
    let message = read.map_err(|e| DecodeError::Contract(ContractViolation::new(e.to_string())))?;
    message.validate().map_err(DecodeError::Contract)?;
    Ok(message)
}

/// A message that breaks its contract's rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ContractViolation(pub String);

impl ContractViolation {
    /// A violation described in words that name the field.
    pub fn new(reason: impl Into<String>) -> Self {
        ContractViolation(reason.into())
    }
}

/// Why a payload could not be read. All of these are permanent: retrying cannot help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// No consumer knows the type.
    #[error("unknown message type {0:?}")]
    UnknownType(String),
    /// The type is known but not at that version.
    #[error("{message_type} version {version} is not supported")]
    UnknownVersion {
        /// The message type.
        message_type: String,
        /// The unsupported version.
        version: u32,
    },
    /// The payload does not match the contract.
    #[error("contract violation: {0}")]
    Contract(ContractViolation),
}

impl DecodeError {
    /// A short machine-readable reason, used as the DLQ reason attribute.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::UnknownType(_) => "unknown-type",
            DecodeError::UnknownVersion { .. } => "unknown-version",
            DecodeError::Contract(_) => "contract-violation",
        }
    }
}

/// Implements [`Message`] for an event type, checking at compile time that the name is
/// `<entity>.<verb>` with a past-tense verb. Extra trait items (`validate`, `upcast`) may follow
/// in braces.
///
/// ```
/// #[derive(Clone, serde::Serialize, serde::Deserialize)]
/// struct ParcelShipped { parcel_id: String }
/// bazaar_contracts::event!(ParcelShipped, "parcel.shipped", version 1);
/// ```
///
/// A name that is not past tense does not compile:
///
/// ```compile_fail
/// #[derive(Clone, serde::Serialize, serde::Deserialize)]
/// struct ParcelShip { parcel_id: String }
/// bazaar_contracts::event!(ParcelShip, "parcel.ship", version 1);
/// ```
#[macro_export]
macro_rules! event {
    ($ty:ty, $name:literal, version $ver:literal $(, { $($body:tt)* })?) => {
        const _: () = assert!($crate::names::is_event_name($name), concat!("not an event name (<entity>.<past-tense verb>): ", $name));
        impl $crate::Message for $ty {
            const TYPE: &'static str = $name;
            const VERSION: u32 = $ver;
            const KIND: $crate::Kind = $crate::Kind::Event;
            $($($body)*)?
        }
    };
}

/// Implements [`Message`] for a task type, checking at compile time that the name is
/// `<service>.<entity>.<request>`.
///
/// ```
/// #[derive(Clone, serde::Serialize, serde::Deserialize)]
/// struct ShipParcel { parcel_id: String }
/// bazaar_contracts::task!(ShipParcel, "shipping.parcel.ship", version 1);
/// ```
///
/// ```compile_fail
/// #[derive(Clone, serde::Serialize, serde::Deserialize)]
/// struct ShipParcel { parcel_id: String }
/// bazaar_contracts::task!(ShipParcel, "parcel.ship", version 1);
/// ```
#[macro_export]
macro_rules! task {
    ($ty:ty, $name:literal, version $ver:literal $(, { $($body:tt)* })?) => {
        const _: () = assert!($crate::names::is_task_name($name), concat!("not a task name (<service>.<entity>.<request>): ", $name));
        impl $crate::Message for $ty {
            const TYPE: &'static str = $name;
            const VERSION: u32 = $ver;
            const KIND: $crate::Kind = $crate::Kind::Task;
            $($($body)*)?
        }
    };
}
