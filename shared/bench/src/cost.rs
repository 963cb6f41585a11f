//! What a saga run would cost on AWS, per confirmed order: the usage the stack counted
//! ([`bazaar_aws::usage`]) divided by the orders, priced at us-east-1 list prices.
//!
//! Receives that found nothing (Lambda's pollers long-poll every queue with a trigger all the
//! time) are a standing cost of each queue, not of the orders: they are reported apart and
//! left out of the per-order figures.

use bazaar_aws::usage::{Prices, Tally, Usage};
use bazaar_localstack::aws::IDLE_POLLING;
use serde_json::{Map, Value, json};

/// One tally's figures per order, and their price (us-east-1, arm64).
pub fn per_order(t: &Tally, orders: f64) -> Value {
    let cost = t.cost(&Prices::US_EAST_1_ARM64);
    let million = 1e6 / orders;
    json!({
        "lambda_invocations": t.invocations as f64 / orders,
        "records_per_invocation": if t.invocations > 0 { t.records as f64 / t.invocations as f64 } else { 0.0 },
        "gb_seconds": t.gb_seconds / orders,
        "http_requests": t.http_requests as f64 / orders,
        "sns_requests": t.billed("SNS") as f64 / orders,
        "sqs_requests": t.billed("SQS") as f64 / orders,
        "dynamodb_requests": t.billed("DynamoDB") as f64 / orders,
        "wru": t.write_units / orders,
        "rru": t.read_units / orders,
        "requests": t.requests.iter().map(|(k, v)| (k.clone(), json!(*v as f64 / orders))).collect::<Map<_, _>>(),
        "dollars_per_million_orders": {
            "lambda_requests": cost.lambda_requests * million,
            "lambda_compute": cost.lambda_compute * million,
            "sns": cost.sns * million,
            "sqs": cost.sqs * million,
            "dynamodb_writes": cost.dynamodb_writes * million,
            "dynamodb_reads": cost.dynamodb_reads * million,
            "http_api": cost.http * million,
            "total": cost.total() * million,
        },
    })
}

/// One JSON line: the run's usage per confirmed order, in total and by function.
pub fn report(usage: &Usage, orders: usize, store: &str, batch_size: Option<u32>) -> Value {
    let orders_f = orders.max(1) as f64;
    let by_function = usage.by_function();
    let mut total = Tally::default();
    let mut functions = Map::new();
    for (name, t) in &by_function {
        if name == IDLE_POLLING {
            continue;
        }
        total.add(t);
        functions.insert(name.clone(), per_order(t, orders_f));
    }
    json!({
        "bench": "saga_cost",
        "store": store,
        "batch_size": batch_size,
        "orders": orders,
        "per_order": per_order(&total, orders_f),
        "by_function": functions,
        "idle_receives": by_function.get(IDLE_POLLING).map_or(0, |t| t.billed("SQS")),
    })
}
