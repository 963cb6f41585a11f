//! Per-message overhead of the platform, for a 1 KB `order.placed` on in-memory ports:
//! the whole path (event bytes to partial batch response) and each stage on its own.
//!
//! `cargo bench -p bazaar-bench --bench per_message`; `scripts/bench` runs it and reads the
//! medians from `target/criterion/`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

// Links the functions' allocator (declared in bazaar-aws), so that the figures are theirs.
use bazaar_aws as _;
use bazaar_bench::fixtures::{self, Reserve};
use bazaar_bench::memory::{EncodingPublisher, MemoryTable};
use bazaar_contracts::Envelope;
use bazaar_contracts::orders::OrderPlaced;
use bazaar_platform::Work;
use bazaar_platform::item::{Condition, Write, item};
use bazaar_platform::outbox;
use bazaar_platform::ports::{Encoded, Publisher, Table};
use bazaar_platform::sqs::Handle;
use bazaar_platform::work::Cause;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

fn per_message(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let table = Arc::new(MemoryTable::default());
    let publisher = Arc::new(EncodingPublisher::default());
    let deps = fixtures::deps(table.clone(), publisher.clone());
    let function = fixtures::function(deps.clone());
    let next = AtomicU64::new(1);
    let fresh = || next.fetch_add(1, Ordering::Relaxed);
    // The table keeps the items of the last KEPT messages (a warm function's recent orders):
    // each measured message's setup forgets what the one KEPT before it wrote. Kept whole,
    // the table grew by two items a message to hundreds of thousands over a run, and its
    // lookups, inserts and fresh pages of memory with it: a cost of the stand-in (DynamoDB
    // is across the network), not of the platform.
    const KEPT: u64 = 1_000;
    let forget = |n: u64| {
        if let Some(old) = n.checked_sub(KEPT) {
            table.forget(&fixtures::state_key(&fixtures::order_id(old)));
            table.forget(&outbox::inbox_key(
                &deps.function,
                &fixtures::envelope_id(old),
            ));
        }
    };
    let fresh_kept = || {
        let n = fresh();
        forget(n);
        n
    };

    // A table that already holds some orders, as a warm function's would.
    for _ in 0..KEPT {
        rt.block_on(fixtures::deliver(
            &function,
            &fixtures::sqs_event_bytes(fresh()),
        ));
    }
    assert_eq!(
        publisher.count(),
        KEPT as usize,
        "every message was processed"
    );
    assert_eq!(
        table.len(),
        2 * KEPT as usize,
        "an order's state and its inbox record each"
    );
    let bytes = fixtures::sqs_event_bytes(0);
    assert!(
        (1_000..1_400).contains(&fixtures::envelope_text(0).len()),
        "the envelope is about 1 KB"
    );

    let mut g = c.benchmark_group("per_message");
    g.bench_function("end_to_end", |b| {
        b.iter_batched(
            || fixtures::sqs_event_bytes(fresh_kept()),
            |event| rt.block_on(fixtures::deliver(&function, &event)),
            // Batches smaller than KEPT: a batch's inputs are made (and their old items
            // forgotten) before any of it runs, so a larger one would forget nothing.
            BatchSize::NumIterations(100),
        )
    });
    g.bench_function("1_event_bytes_to_record", |b| {
        let text = std::str::from_utf8(&bytes).unwrap();
        b.iter(|| bazaar_platform::function::sqs_event(text).unwrap())
    });
    let text = fixtures::envelope_text(0);
    g.bench_function("2_envelope", |b| {
        b.iter(|| bazaar_platform::sqs::envelope_of(&text).unwrap())
    });
    let envelope = Envelope::from_json(&text).unwrap();
    g.bench_function("3_typed_message", |b| {
        b.iter(|| envelope.decode::<OrderPlaced>().unwrap())
    });
    g.bench_function("4_inbox_check", |b| {
        b.iter_batched(
            || Envelope::from_json(&fixtures::envelope_text(fresh_kept())).unwrap(),
            |e| {
                rt.block_on(table.get(&outbox::inbox_key(&deps.function, &e.id)))
                    .unwrap()
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("5_handler", |b| {
        b.iter_batched(
            || Envelope::from_json(&fixtures::envelope_text(fresh_kept())).unwrap(),
            |e| {
                let message: OrderPlaced = e.decode().unwrap();
                let mut work = Work::new(&deps, Cause::of(&e, &deps.function));
                rt.block_on(Reserve.handle(message, &mut work)).unwrap();
                work
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("6_commit_inbox_state_outbox", |b| {
        b.iter_batched(
            || {
                // What the handler stage leaves: its one write and its one message.
                let e = Envelope::from_json(&fixtures::envelope_text(fresh_kept())).unwrap();
                let message: OrderPlaced = e.decode().unwrap();
                let key = fixtures::state_key(&message.order_id);
                let writes = vec![Write::Put {
                    item: item(&key, serde_json::json!({ "status": "reserving", "customer": message.customer, "lines": message.items.len() })),
                    condition: Some(Condition::NotExists),
                }];
                let mut work = Work::new(&deps, Cause::of(&e, &deps.function));
                rt.block_on(Reserve.handle(message, &mut work)).unwrap();
                (e, writes, work.outgoing().to_vec())
            },
            |(e, writes, outgoing)| {
                let source = outbox::source_key(&format!("msg:{}:{}", deps.function, e.id));
                // As a message's unit of work commits: the envelopes written as JSON once,
                // carried by the inbox record.
                let encoded = Encoded::new(&outgoing);
                let (guard, carried) = outbox::carrying_inbox_write(
                    &deps.function,
                    &e,
                    (chrono::Utc::now(), chrono::Utc::now()),
                    &encoded,
                );
                rt.block_on(outbox::commit_with(
                    &deps,
                    &source,
                    &e.id,
                    vec![guard],
                    writes,
                    &encoded,
                    !carried,
                ))
                .unwrap();
                (source, outgoing)
            },
            BatchSize::NumIterations(100),
        )
    });
    let outgoing = {
        let e = Envelope::from_json(&fixtures::envelope_text(fresh())).unwrap();
        let mut work = Work::new(&deps, Cause::of(&e, &deps.function));
        rt.block_on(Reserve.handle(e.decode().unwrap(), &mut work))
            .unwrap();
        work.outgoing().to_vec()
    };
    // The envelopes' JSON was written at the commit (stage 6); the publish sends that text.
    let encoded = Encoded::new(&outgoing);
    g.bench_function("7_publish_request", |b| {
        b.iter(|| rt.block_on(publisher.publish_encoded(&encoded)).unwrap())
    });
    g.finish();
    assert!(
        table.len() <= 2 * KEPT as usize + 2,
        "the table kept its size: {} items",
        table.len()
    );
}

criterion_group!(benches, per_message);
criterion_main!(benches);
