//! What the channels' brokers share. A broker is the one function that speaks a channel's
//! partner API (`agora-broker`, `souk-broker`); each builds its client over
//! [`http::HttpTransport`] (the fakes' transport in tests), answers the channel's orders with
//! [`answers`] and keeps the channel's items up to date with [`sync`], within the channel's
//! rate limit ([`limiter`]).
#![forbid(unsafe_code)]

pub mod answers;
pub mod broker;
pub mod http;
pub mod limiter;
pub mod reconcile;
pub mod sync;

pub use answers::{Answerer, RetryAnswers, answer_task};
pub use http::{ChannelSettings, HttpTransport};
pub use limiter::Limiter;
