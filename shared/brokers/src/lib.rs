//! What the channels' brokers share. A broker is the one function that speaks a channel's
//! partner API (`agora-broker`, `souk-broker`); each builds its client over
//! [`http::HttpTransport`] (the fakes' transport in tests) and answers the channel's orders
//! with [`answers`].
#![forbid(unsafe_code)]

pub mod answers;
pub mod http;

pub use answers::{Answerer, RetryAnswers, answer_task};
pub use http::{ChannelSettings, HttpTransport};
