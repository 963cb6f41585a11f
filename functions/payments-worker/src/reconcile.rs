//! The reconciliation: on a schedule, the provider's books are compared with the payments
//! records, so that money never rests on a callback having arrived.
//!
//! For every charge the provider made in the lookback window (and older than a grace period,
//! so that callbacks in flight are not overtaken):
//! - the order's charge record still says "pending" while the books say the charge ended (its
//!   callback was lost, refused, or swallowed): the outcome is settled now, as a matching
//!   callback would settle it (`payment.captured` or `payment.declined`; the saga confirms
//!   the order, or refunds the capture of an order it cancelled meanwhile), and reported;
//! - a capture (not refunded) with no charge record of ours, or under another payment id than
//!   the order's charge: money taken for no order; reported, for a human to refund or explain.
//!
//! A report is a letter in the function's DLQ (reason `capture-unannounced` or
//! `capture-without-order`, the finding as JSON in the body), which raises the DLQ's alarm and
//! shows in `bazaar dlq list payments-worker`; each finding is reported once (a marker record
//! remembers it). Report letters are not messages: delete them once handled, do not replay.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use bazaar_contracts::Actor;
use bazaar_contracts::payments::{PaymentCaptured, PaymentDeclined};
use bazaar_payments::keys::{self, ChargeRecord, ChargeState};
use bazaar_payments::{ChargeStatus, LedgerCharge, PaymentProvider, RetryPolicy};
use bazaar_platform::item::{Key, record};
use bazaar_platform::ports::DeadLetter;
use bazaar_platform::schedule::Job;
use bazaar_platform::settings::Env;
use bazaar_platform::work::Cause;
use bazaar_platform::{Deps, HandlerError, SettingsError, Work};
use chrono::Duration;
use serde_json::{Value, json};

/// How far back a run looks, unless `RECONCILE_LOOKBACK_SECONDS` says: two days, longer than
/// any order stays open and than the provider retries a callback.
pub const DEFAULT_LOOKBACK: Duration = Duration::days(2);
/// How old a charge must be before a run judges it, unless `RECONCILE_GRACE_SECONDS` says:
/// five minutes, for its callback to arrive the ordinary way.
pub const DEFAULT_GRACE: Duration = Duration::minutes(5);
/// Charges read per page of the provider's list.
const PAGE: usize = 100;

/// What a run found and did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    /// Charges compared.
    pub checked: usize,
    /// Outcomes settled because their callback never came.
    pub settled: usize,
    /// Captures with no order of ours.
    pub without_order: usize,
    /// Findings reported now (each is reported once).
    pub reported: usize,
}

/// The scheduled job.
pub struct Reconcile {
    pub(crate) provider: Arc<dyn PaymentProvider>,
    pub(crate) retry: RetryPolicy,
    pub(crate) settings: Settings,
}

/// How far a run looks back and how long it leaves a charge to its callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// `RECONCILE_LOOKBACK_SECONDS` (an hour to 30 days; [`DEFAULT_LOOKBACK`] when unset).
    pub lookback: Duration,
    /// `RECONCILE_GRACE_SECONDS` (0 to a day, shorter than the lookback; [`DEFAULT_GRACE`]
    /// when unset).
    pub grace: Duration,
}

impl bazaar_platform::Settings for Settings {
    fn read(env: &Env<'_>) -> Result<Settings, SettingsError> {
        let lookback = env.seconds_or(
            "RECONCILE_LOOKBACK_SECONDS",
            3_600..=2_592_000,
            DEFAULT_LOOKBACK,
        )?;
        let grace = env.seconds_or("RECONCILE_GRACE_SECONDS", 0..=86_400, DEFAULT_GRACE)?;
        if grace >= lookback {
            return Err(env.invalid(
                "RECONCILE_GRACE_SECONDS",
                "fewer seconds than RECONCILE_LOOKBACK_SECONDS (a window with nothing to judge)",
            ));
        }
        Ok(Settings { lookback, grace })
    }
}

#[async_trait]
impl Job for Reconcile {
    fn name(&self) -> &'static str {
        "reconcile-payments"
    }

    async fn run(&self, deps: &Deps, _event: &Value) -> Result<(), HandlerError> {
        let report = self.reconcile(deps).await?;
        if report.settled > 0 || report.without_order > 0 {
            tracing::warn!(function = %deps.function, checked = report.checked, settled = report.settled, without_order = report.without_order, reported = report.reported, "reconciliation found charges the records did not show");
        } else {
            tracing::info!(function = %deps.function, checked = report.checked, "reconciliation: the records agree with the provider's books");
        }
        Ok(())
    }
}

impl Reconcile {
    /// One run over the provider's books.
    pub async fn reconcile(&self, deps: &Deps) -> Result<Report, HandlerError> {
        let now = deps.clock.now();
        let from = (now - self.settings.lookback).timestamp();
        let until = (now - self.settings.grace).timestamp();
        let mut report = Report::default();
        let mut after: Option<String> = None;
        loop {
            let page = self
                .retry
                .run(
                    || self.provider.list(from, after.as_deref(), PAGE),
                    super::pause,
                )
                .await
                .map_err(super::handler_error)?;
            for charge in &page.charges {
                if charge.created > until {
                    continue;
                }
                report.checked += 1;
                self.compare(deps, charge, &mut report).await?;
            }
            match (page.has_more, page.charges.last()) {
                (true, Some(last)) => after = Some(last.payment_id.clone()),
                _ => return Ok(report),
            }
        }
    }

    async fn compare(
        &self,
        deps: &Deps,
        charge: &LedgerCharge,
        report: &mut Report,
    ) -> Result<(), HandlerError> {
        let key = Key::new(keys::order_partition(&charge.reference), keys::CHARGE);
        let record: Option<ChargeRecord> = deps.table()?.get_as(&key).await?;
        let captured = charge.status == ChargeStatus::Succeeded && !charge.refunded;
        match record {
            Some(r) if r.payment_id == charge.payment_id => {
                if r.status != ChargeState::Pending || charge.status == ChargeStatus::Pending {
                    return Ok(());
                }
                if settle(deps, &key, r, charge).await? {
                    report.settled += 1;
                    report.reported += usize::from(
                        finding(deps, "capture-unannounced", charge, "the provider ended this charge but its callback never settled it here: settled by the reconciliation").await?,
                    );
                }
            }
            _ if captured => {
                report.without_order += 1;
                report.reported += usize::from(
                    finding(
                        deps,
                        "capture-without-order",
                        charge,
                        "money captured for no charge of ours: refund or explain it",
                    )
                    .await?,
                );
            }
            _ => {}
        }
        Ok(())
    }
}

/// Settles a pending charge record with the books' outcome, as a matching callback would.
/// Returns false when something else settled it first.
async fn settle(
    deps: &Deps,
    key: &Key,
    pending: ChargeRecord,
    charge: &LedgerCharge,
) -> Result<bool, HandlerError> {
    let scope = format!("reconcile:{}", charge.payment_id);
    let mut cause = Cause::start(
        scope.clone(),
        charge.reference.clone(),
        Actor::system(),
        &deps.function,
    );
    if let Some(flow) = &pending.flow {
        cause = cause.joined(flow);
    }
    let mut work = Work::new(deps, cause);
    let (status, reason) = match &charge.status {
        ChargeStatus::Succeeded => {
            work.send(&PaymentCaptured {
                order_id: pending.order_id.clone(),
                payment_id: pending.payment_id.clone(),
                amount: pending.amount,
            })?;
            (ChargeState::Succeeded, None)
        }
        ChargeStatus::Failed { reason } => {
            work.send(&PaymentDeclined {
                order_id: pending.order_id.clone(),
                payment_id: pending.payment_id.clone(),
                reason: Some(reason.clone()),
            })?;
            (ChargeState::Failed, Some(reason.clone()))
        }
        ChargeStatus::Pending => return Ok(false),
    };
    let at = deps.clock.now();
    work.put(
        record(
            key,
            &ChargeRecord {
                status,
                reason,
                at,
                ..pending
            },
        ),
        Some(super::pending_only()),
    );
    match work.commit(&scope).await {
        Ok(()) => Ok(true),
        // A callback settled it between the read and the commit.
        Err(HandlerError::Transient(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Reports a finding once: a letter in the DLQ, remembered by a marker record. Returns whether
/// it was reported now.
async fn finding(
    deps: &Deps,
    reason: &str,
    charge: &LedgerCharge,
    detail: &str,
) -> Result<bool, HandlerError> {
    let table = deps.table()?;
    let marker = Key::new(format!("FINDING#{}", charge.payment_id), reason);
    if table.get(&marker).await?.is_some() {
        return Ok(false);
    }
    tracing::error!(reason, payment_id = %charge.payment_id, reference = %charge.reference, detail, "reconciliation finding");
    let body = json!({
        "finding": reason,
        "detail": detail,
        "payment_id": charge.payment_id,
        "reference": charge.reference,
        "status": format!("{:?}", charge.status),
        "amount": charge.amount,
        "created": charge.created,
    });
    let attributes = BTreeMap::from([
        ("bazaar.reason".to_string(), reason.to_string()),
        ("bazaar.detail".to_string(), detail.to_string()),
        ("bazaar.function".to_string(), deps.function.clone()),
        ("type".to_string(), "reconciliation.finding".to_string()),
    ]);
    deps.dead_letters
        .park(DeadLetter {
            body: body.to_string(),
            attributes,
            group_id: None,
        })
        .await?;
    table
        .put(
            record(
                &marker,
                &Reported {
                    reported_at: deps.clock.now(),
                },
            ),
            None,
        )
        .await?;
    Ok(true)
}

/// The marker that a finding was reported (so that it is reported once).
#[derive(serde::Serialize)]
struct Reported {
    reported_at: chrono::DateTime<chrono::Utc>,
}
