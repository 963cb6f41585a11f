//! What AWS bills, counted as the adapters make their calls, and its price.
//!
//! - **Requests**, by service and operation, are counted by an SDK interceptor
//!   ([`Usage::interceptor`]) once per *attempt*: a retried call is billed again. SNS and SQS
//!   bill each 64 KiB chunk of a request's payload as one request; the interceptor counts
//!   those chunks from the request body it sees.
//! - **DynamoDB capacity units** are computed by the table adapter from the items it writes
//!   and reads, by DynamoDB's published rules ([`write_units`], [`read_units`]): DynamoDB says
//!   what a call consumed only when asked, and an emulator answers fixed figures (moto reports
//!   none for transactions), so counting them ourselves is the only way that works the same
//!   on every endpoint. A write is billed by the larger of the item before and after it:
//!   the adapters remember the size of every item they read or write ([`Usage::saw`]), and
//!   charge a put, an update or a delete by the larger of that and what they write. Where
//!   the size after is not in hand (an update inside a transaction) they charge the larger of
//!   the size before and the key and values written: exact but for an update that grows an
//!   item across a 1 KB boundary.
//! - **Lambda invocations, GB-seconds and API Gateway requests** are not SDK calls: whoever
//!   invokes the functions (the local stack) records them ([`Usage::invoked`],
//!   [`Usage::http_request`]).
//!
//! [`Prices`] holds the list prices the report uses; [`Tally::cost`] applies them.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// The payload size SNS and SQS bill as one request.
pub const BILLED_CHUNK: usize = 64 * 1024;

/// What one function (or one event source) used.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    /// Requests (attempts) by `Service.Operation`.
    pub requests: BTreeMap<String, u64>,
    /// Billed requests by service (`SNS`, `SQS`, `DynamoDB`): a request counts once per
    /// 64 KiB chunk of its payload for SNS and SQS.
    pub billed: BTreeMap<String, u64>,
    /// DynamoDB read request units.
    pub read_units: f64,
    /// DynamoDB write request units.
    pub write_units: f64,
    /// Lambda invocations.
    pub invocations: u64,
    /// Lambda compute, GB-seconds (memory × duration rounded up to the millisecond).
    pub gb_seconds: f64,
    /// API Gateway (HTTP API) requests.
    pub http_requests: u64,
    /// Queue records handed to the function.
    pub records: u64,
}

impl Tally {
    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &Tally) {
        for (k, v) in &other.requests {
            *self.requests.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.billed {
            *self.billed.entry(k.clone()).or_default() += v;
        }
        self.read_units += other.read_units;
        self.write_units += other.write_units;
        self.invocations += other.invocations;
        self.gb_seconds += other.gb_seconds;
        self.http_requests += other.http_requests;
        self.records += other.records;
    }

    /// Billed requests of one service.
    pub fn billed(&self, service: &str) -> u64 {
        self.billed.get(service).copied().unwrap_or(0)
    }

    /// Requests of one `Service.Operation`.
    pub fn requests(&self, operation: &str) -> u64 {
        self.requests.get(operation).copied().unwrap_or(0)
    }

    /// What this usage costs at `prices`.
    pub fn cost(&self, prices: &Prices) -> Cost {
        let m = 1e-6;
        Cost {
            lambda_requests: self.invocations as f64 * prices.lambda_per_million * m,
            lambda_compute: self.gb_seconds * prices.lambda_per_gb_second,
            sns: self.billed("SNS") as f64 * prices.sns_per_million * m,
            sqs: self.billed("SQS") as f64 * prices.sqs_per_million * m,
            dynamodb_writes: self.write_units * prices.dynamodb_per_million_wru * m,
            dynamodb_reads: self.read_units * prices.dynamodb_per_million_rru * m,
            http: self.http_requests as f64 * prices.http_api_per_million * m,
        }
    }
}

/// Dollars, by what is billed.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Cost {
    /// Lambda requests.
    pub lambda_requests: f64,
    /// Lambda GB-seconds.
    pub lambda_compute: f64,
    /// SNS publishes.
    pub sns: f64,
    /// SQS requests.
    pub sqs: f64,
    /// DynamoDB write request units.
    pub dynamodb_writes: f64,
    /// DynamoDB read request units.
    pub dynamodb_reads: f64,
    /// API Gateway HTTP API requests.
    pub http: f64,
}

impl Cost {
    /// The sum.
    pub fn total(&self) -> f64 {
        self.lambda_requests
            + self.lambda_compute
            + self.sns
            + self.sqs
            + self.dynamodb_writes
            + self.dynamodb_reads
            + self.http
    }
}

/// List prices, in dollars.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prices {
    /// Per million Lambda requests.
    pub lambda_per_million: f64,
    /// Per GB-second of Lambda compute.
    pub lambda_per_gb_second: f64,
    /// Per million SNS publishes (64 KiB chunks).
    pub sns_per_million: f64,
    /// Per million SQS requests (64 KiB chunks).
    pub sqs_per_million: f64,
    /// Per million DynamoDB on-demand write request units.
    pub dynamodb_per_million_wru: f64,
    /// Per million DynamoDB on-demand read request units.
    pub dynamodb_per_million_rru: f64,
    /// Per million API Gateway HTTP API requests.
    pub http_api_per_million: f64,
}

impl Prices {
    /// us-east-1 list prices, Lambda on arm64 (first tiers, no free tier).
    pub const US_EAST_1_ARM64: Prices = Prices {
        lambda_per_million: 0.20,
        lambda_per_gb_second: 0.000_013_333_4,
        sns_per_million: 0.50,
        sqs_per_million: 0.40,
        dynamodb_per_million_wru: 0.625,
        dynamodb_per_million_rru: 0.125,
        http_api_per_million: 1.00,
    };
}

/// Usage by function, shared by every adapter and invoker that records into it.
#[derive(Debug, Default)]
pub struct Usage {
    tallies: Mutex<BTreeMap<String, Tally>>,
    /// The last size the table adapters saw of each item (table, partition key, sort key):
    /// DynamoDB bills a put, an update or a delete by the larger of the item before and
    /// after, and the item before is not in a write's answer.
    sizes: Mutex<HashMap<(String, String, String), usize>>,
}

/// The service names the report uses, from the SDK's.
fn service_name(sdk: &str) -> &str {
    match sdk.to_ascii_lowercase().as_str() {
        "dynamodb" => "DynamoDB",
        "sns" => "SNS",
        "sqs" => "SQS",
        _ => sdk,
    }
}

impl Usage {
    /// An empty record.
    pub fn new() -> Arc<Usage> {
        Arc::new(Usage::default())
    }

    fn with(&self, function: &str, f: impl FnOnce(&mut Tally)) {
        let mut tallies = self.tallies.lock().unwrap_or_else(|e| e.into_inner());
        f(tallies.entry(function.to_string()).or_default());
    }

    /// Records one request (attempt) of `function` to `service`'s `operation` with a payload
    /// of `payload` bytes.
    pub fn request(&self, function: &str, service: &str, operation: &str, payload: usize) {
        let service = service_name(service);
        let billed = match service {
            "SNS" | "SQS" => payload.div_ceil(BILLED_CHUNK).max(1) as u64,
            _ => 1,
        };
        self.with(function, |t| {
            *t.requests
                .entry(format!("{service}.{operation}"))
                .or_default() += 1;
            *t.billed.entry(service.to_string()).or_default() += billed;
        });
    }

    /// The size last seen of an item of `table` (0 if none was seen: a new item).
    pub fn size_seen(&self, table: &str, pk: &str, sk: &str) -> usize {
        let sizes = self.sizes.lock().unwrap_or_else(|e| e.into_inner());
        sizes
            .get(&(table.to_string(), pk.to_string(), sk.to_string()))
            .copied()
            .unwrap_or(0)
    }

    /// Records the size of an item of `table` as read or written (`None`: deleted).
    pub fn saw(&self, table: &str, pk: &str, sk: &str, size: Option<usize>) {
        let mut sizes = self.sizes.lock().unwrap_or_else(|e| e.into_inner());
        let key = (table.to_string(), pk.to_string(), sk.to_string());
        match size {
            Some(size) => sizes.insert(key, size),
            None => sizes.remove(&key),
        };
    }

    /// Records DynamoDB capacity units.
    pub fn units(&self, function: &str, read: f64, write: f64) {
        self.with(function, |t| {
            t.read_units += read;
            t.write_units += write;
        });
    }

    /// Records one Lambda invocation of `function` with `memory_mb` that ran for `duration`
    /// (billed by the millisecond, rounded up) and was handed `records` queue records.
    pub fn invoked(&self, function: &str, memory_mb: u32, duration: Duration, records: usize) {
        let ms = duration.as_micros().div_ceil(1000).max(1) as f64;
        self.with(function, |t| {
            t.invocations += 1;
            t.gb_seconds += f64::from(memory_mb) / 1024.0 * ms / 1000.0;
            t.records += records as u64;
        });
    }

    /// Records one API Gateway request routed to `function`.
    pub fn http_request(&self, function: &str) {
        self.with(function, |t| t.http_requests += 1);
    }

    /// Usage so far, by function.
    pub fn by_function(&self) -> BTreeMap<String, Tally> {
        self.tallies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Usage so far, all functions together.
    pub fn total(&self) -> Tally {
        let mut total = Tally::default();
        for t in self.by_function().values() {
            total.add(t);
        }
        total
    }

    /// Forgets everything recorded (to measure a phase on its own).
    pub fn reset(&self) {
        self.tallies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// An SDK interceptor that records `function`'s requests here: add it to a client's
    /// configuration (`Config::builder().interceptor(...)`).
    pub fn interceptor(self: &Arc<Self>, function: &str) -> Counter {
        Counter {
            usage: self.clone(),
            function: function.to_string(),
        }
    }
}

/// Counts every attempt of the client it is added to ([`Usage::interceptor`]).
#[derive(Debug, Clone)]
pub struct Counter {
    usage: Arc<Usage>,
    function: String,
}

impl Intercept for Counter {
    fn name(&self) -> &'static str {
        "BazaarUsageCounter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let (service, operation) = cfg
            .load::<Metadata>()
            .map(|m| (m.service().to_string(), m.name().to_string()))
            .unwrap_or_else(|| ("unknown".into(), "unknown".into()));
        let payload = context
            .request()
            .body()
            .bytes()
            .map(<[u8]>::len)
            .unwrap_or(0);
        self.usage
            .request(&self.function, &service, &operation, payload);
        Ok(())
    }
}

/// DynamoDB write request units for writing an item of `size` bytes: one per KB started,
/// two in a transaction (prepare and commit).
pub fn write_units(size: usize, transactional: bool) -> f64 {
    let units = size.div_ceil(1024).max(1) as f64;
    if transactional { 2.0 * units } else { units }
}

/// DynamoDB read request units for reading `size` bytes: one per 4 KB started for a strongly
/// consistent read, half that for an eventually consistent one (a missing item costs as one
/// of up to 4 KB).
pub fn read_units(size: usize, consistent: bool) -> f64 {
    let units = size.div_ceil(4096).max(1) as f64;
    if consistent { units } else { units / 2.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_follow_dynamodb_rounding() {
        assert_eq!(write_units(1, false), 1.0);
        assert_eq!(write_units(1024, false), 1.0);
        assert_eq!(write_units(1025, false), 2.0);
        assert_eq!(write_units(1025, true), 4.0);
        assert_eq!(read_units(0, true), 1.0);
        assert_eq!(read_units(4097, true), 2.0);
        assert_eq!(read_units(4097, false), 1.0);
    }

    #[test]
    fn sns_and_sqs_bill_per_64_kib_chunk() {
        let usage = Usage::new();
        usage.request("f", "sns", "PublishBatch", 10);
        usage.request("f", "sqs", "SendMessage", BILLED_CHUNK + 1);
        usage.request("f", "dynamodb", "PutItem", 300_000);
        let t = usage.total();
        assert_eq!(t.billed("SNS"), 1);
        assert_eq!(t.billed("SQS"), 2);
        assert_eq!(t.billed("DynamoDB"), 1);
        assert_eq!(t.requests("SNS.PublishBatch"), 1);
    }

    #[test]
    fn lambda_compute_is_billed_by_the_millisecond_rounded_up() {
        let usage = Usage::new();
        usage.invoked("f", 1024, Duration::from_micros(1_001), 3);
        let t = usage.total();
        assert_eq!(t.invocations, 1);
        assert_eq!(t.records, 3);
        assert!((t.gb_seconds - 0.002).abs() < 1e-12);
        let cost = t.cost(&Prices::US_EAST_1_ARM64);
        assert!((cost.lambda_requests - 0.2e-6).abs() < 1e-15);
        assert!((cost.lambda_compute - 0.002 * 0.000_013_333_4).abs() < 1e-15);
    }
}
