//! `bazaar`: the operators' toolbelt. Parses options, builds the target, prints results; the
//! work is in the library.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bazaar_embedded::Engine;
use bazaar_localstack::StackModel;
use bazaar_platform::clock::SystemClock;
use bazaar_toolbelt::dlq::{self, AuditRecord, Observer, Selection};
use bazaar_toolbelt::{LocalBackend, Target, render};
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "bazaar",
    max_term_width = 80,
    about = "Operate a Bazaar stack: queues, dead letters, publishing, tracing, replaying, users.",
    long_about = "Operate a Bazaar stack: queues, dead letters, publishing, tracing, replaying, users.\n\n\
        By default the commands act on the local stack that scripts/dev runs (its data under \
        .bazaar/). With --aws (or --endpoint-url) they act on AWS, with the default credential \
        chain and region, on the stack of --stage.",
    after_help = "Examples:\n  bazaar queues\n  bazaar dlq list orders-saga\n  bazaar --aws --stage prod dlq replay orders-saga --reason unknown-type --dry-run\n  bazaar trace 3f0c9d2e-…"
)]
struct Cli {
    #[command(flatten)]
    target: TargetArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct TargetArgs {
    /// The SAM template of the stack (names and wiring of every resource).
    #[arg(long, global = true, default_value = "template.yaml")]
    template: PathBuf,
    /// The local stack's data folder (as given to scripts/dev).
    #[arg(long, global = true, default_value = ".bazaar")]
    data_dir: PathBuf,
    /// Act on AWS instead of the local stack.
    #[arg(long, global = true)]
    aws: bool,
    /// An AWS-compatible endpoint (implies --aws), such as http://127.0.0.1:5000.
    #[arg(long, global = true, value_name = "URL")]
    endpoint_url: Option<String>,
    /// The deployment stage: resource names are bazaar-<stage>-….
    #[arg(long, global = true, default_value = "dev")]
    stage: String,
}

#[derive(Subcommand)]
enum Command {
    /// Every consumer queue: messages visible and in flight, the age of the oldest one, and
    /// the depth of its DLQ.
    ///
    /// Example: bazaar queues --json
    Queues {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Dead letters: list them by reason, show one, move them back, read the audit.
    ///
    /// Example: bazaar dlq list orders-saga
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// The template's secrets: list them (never their values), or put a new value (a
    /// rotation: every function reads it within five minutes, without a deploy, and the
    /// value before it stays accepted on webhooks meanwhile).
    ///
    /// Examples:
    ///   bazaar secrets list
    ///   printf %s "$KEY" | bazaar --aws secrets put PaymentProviderApiKey
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// Data migrations of the services' tables: versioned changes written in Rust, planned
    /// (a dry run), then applied within a rate limit, resumable from their checkpoint, never
    /// overwriting what a function writes meanwhile.
    ///
    /// Examples:
    ///   bazaar migrate list
    ///   bazaar migrate plan identity-0001
    ///   bazaar migrate apply identity-0001 --rate 50
    #[command(subcommand)]
    Migrate(MigrateCommand),
    /// Publishes one event or task from a JSON file of its payload, in a new envelope (new id,
    /// actor `system`) on its topic. A payload that breaks the contract is refused.
    ///
    /// Example: bazaar publish product.withdrawn payload.json
    Publish {
        /// The message type (`product.withdrawn`, `orders.order.expire`).
        message_type: String,
        /// The payload as JSON (`-` reads standard input).
        file: PathBuf,
        /// The contract version of the payload (default: the current one).
        #[arg(long)]
        version: Option<u32>,
        /// Join an existing flow instead of starting a new one.
        #[arg(long)]
        correlation_id: Option<String>,
    },
    /// Every archived message of one flow, as a tree of causes: who handled
    /// each, how long it waited in their queue and how long their handler ran.
    /// An order's flow holds its whole life: placement, reservation, payment,
    /// timeout, cancellation, refund, shipment, delivery or return.
    ///
    /// Accepts what you hold:
    ///   an order id          a storefront order's, or a channel order's
    ///                        (agora-…, souk-…)
    ///   a channel's order id ag-1, or agora:ag-1 when two channels could
    ///                        share it
    ///   a sku                lists the flows that touched it: its product,
    ///                        price and stock, channel sales, orders
    ///   a correlation id     a request id, for flows that are no order's
    ///                        (a product created, a user signed up)
    ///
    /// Examples:
    ///   bazaar trace 0b7e6a4c-2f1d-4c3e-9a53-6d2b1f0e8c71
    ///   bazaar trace agora:ag-1001
    ///   bazaar trace MUG-01
    ///   bazaar trace 0b7e6a4c-… --otlp > flow.json   (for a trace viewer)
    #[command(verbatim_doc_comment)]
    Trace {
        /// An order id, a channel's order id (`ag-1`, `agora:ag-1`), a sku or a correlation id.
        what: String,
        /// Print JSON instead of a tree.
        #[arg(long, conflicts_with = "otlp")]
        json: bool,
        /// Print the flow as OpenTelemetry spans in OTLP JSON (an ExportTraceServiceRequest),
        /// which trace viewers such as Jaeger import.
        #[arg(long)]
        otlp: bool,
    },
    /// After a deployment: a merchant creates a product, a customer orders it, and the order
    /// must be confirmed, through the deployed APIs. Credentials come from the environment:
    /// SMOKE_CUSTOMER and SMOKE_MERCHANT, each as user:password.
    ///
    /// Example: bazaar smoke --api https://abc.execute-api.eu-west-1.amazonaws.com --identity https://def.execute-api.eu-west-1.amazonaws.com
    Smoke {
        /// The marketplace API's base URL (the stack's ApiUrl output).
        #[arg(long)]
        api: String,
        /// The identity API's base URL (the stack's IdentityUrl output; default: --api).
        #[arg(long)]
        identity: Option<String>,
        /// The card token to pay with (a sandbox token of the real provider).
        #[arg(long, default_value = "tok_ok")]
        card_token: String,
        /// Seconds to wait for each asynchronous step.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// The outside channels (agora, souk): per channel the skus listed, in sync, pending and
    /// in error, the oldest change still waiting, orders awaiting acknowledgement, and the
    /// last reconciliation; or send listings again.
    ///
    /// Example: bazaar channels status
    #[command(subcommand)]
    Channels(ChannelsCommand),
    /// Users: make one (how a deployed stage gets its first operator), decide a merchant's
    /// application, disable or enable one, list them. Acts on the identity table directly:
    /// the events name you (your AWS identity, or local:<user>).
    ///
    /// Example: bazaar users list --status pending
    #[command(subcommand)]
    Users(UsersCommand),
    /// The running stack at a glance, refreshed in place: per function its queue (depth,
    /// oldest message, DLQ) and its handling over the window (messages per second, handled,
    /// errors, p50 and p99 time), then the business (orders placed, confirmed and cancelled
    /// per source, gross value, cancellations by reason, channel sync lag; test orders left
    /// out). Handling and business figures come from the metrics scripts/dev writes to
    /// <data-dir>/metrics.emf; on AWS the CloudWatch dashboards show them and top shows the
    /// queues. Ctrl-C stops it.
    ///
    /// Examples:
    ///   bazaar top
    ///   bazaar top --once --window 1h     (one screen, for a script)
    #[command(verbatim_doc_comment)]
    Top {
        /// Print one screen and stop.
        #[arg(long)]
        once: bool,
        /// How far back handling and business figures reach: 30s, 5m, 1h.
        #[arg(long, default_value = "5m", value_parser = bazaar_toolbelt::top::parse_window)]
        window: chrono::Duration,
        /// Seconds between refreshes.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=3600))]
        every: u64,
        /// Show idle functions too (nothing queued, dead or handled in the window).
        #[arg(long)]
        all: bool,
    },
    /// For the AWS SAM CLI: writes the --env-vars file that aims `sam local invoke` and
    /// `sam local start-api` at the stack on an AWS-compatible endpoint (the one
    /// `scripts/dev --endpoint-url` provisions; what is missing there is created).
    ///
    /// Example: bazaar --endpoint-url http://127.0.0.1:5000 sam env-vars --out target/sam-env.json
    #[command(subcommand)]
    Sam(SamCommand),
    /// Sends archived events of the given types, in their original order, into one consumer's
    /// queue only: no other consumer sees them again. Rebuilds derived state, such as the
    /// search index (see README, "Rebuilding the search index").
    ///
    /// Example: bazaar replay --types 'product.*' --to search-indexer --empty-table
    Replay {
        /// Types to replay: exact (`product.published`) or a prefix ending in `*`
        /// (`product.*`); repeat or separate with commas.
        #[arg(long, value_delimiter = ',', required = true)]
        types: Vec<String>,
        /// The consumer: a logical id (SearchIndexerFunction) or a binary name (search-indexer).
        #[arg(long)]
        to: String,
        /// Empty the consumer's table first (its derived state and its inbox).
        #[arg(long)]
        empty_table: bool,
        /// Print what would be sent, and send nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
enum MigrateCommand {
    /// Every migration, its table, and where it stands on the target.
    List {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// A dry run: reads the whole table, changes nothing, prints how many items would change
    /// with samples (and keeps the count for the ETA of `apply`).
    Plan {
        /// The migration's id (or the start of it).
        id: String,
        /// Capacity units per second the dry run may read.
        #[arg(long, default_value_t = bazaar_toolbelt::migrate::DEFAULT_RATE)]
        rate: f64,
    },
    /// Applies a migration from its checkpoint, with progress and an ETA.
    Apply {
        /// The migration's id (or the start of it).
        id: String,
        /// Capacity units per second (reads and writes) the run may use.
        #[arg(long, default_value_t = bazaar_toolbelt::migrate::DEFAULT_RATE)]
        rate: f64,
        /// Items per page (a checkpoint after each).
        #[arg(long, default_value_t = bazaar_toolbelt::migrate::DEFAULT_PAGE)]
        page: usize,
        /// Start from the beginning, not from the checkpoint (items already migrated are
        /// still left alone).
        #[arg(long)]
        restart: bool,
    },
}

#[derive(Subcommand)]
enum SecretsCommand {
    /// Each secret of the template: its name for the stage, whether it exists on the target,
    /// and the functions that read it.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Makes a new value current (read from standard input, or from --from-file; never an
    /// argument, which the shell's history and `ps` would keep). The value before it becomes
    /// the previous one.
    Put {
        /// The secret: its logical id (`PaymentProviderApiKey`), name or ARN.
        secret: String,
        /// Read the value from this file instead of standard input.
        #[arg(long)]
        from_file: Option<std::path::PathBuf>,
    },
}

#[derive(Subcommand)]
enum SamCommand {
    /// Every function's variables, bound to the endpoint's tables, topics and queues, with
    /// AWS_ENDPOINT_URL as the function's container reaches the endpoint.
    ///
    /// Example: bazaar --endpoint-url http://127.0.0.1:5000 sam env-vars --out target/sam-env.json
    EnvVars {
        /// The endpoint as the function's container reaches it (default: the endpoint, with
        /// a loopback host replaced by host.docker.internal).
        #[arg(long, value_name = "URL")]
        function_endpoint_url: Option<String>,
        /// Write the file here instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Makes a user, active at once, with the sign-up rules for names, addresses and
    /// passwords. The password comes from standard input (--password-stdin) or from
    /// BAZAAR_USER_PASSWORD, never from the command line.
    ///
    /// Example: printf '%s' "$PW" | bazaar --aws --stage prod users create ops-ada --email ada@example.com --role operator --password-stdin
    Create {
        /// The user name (3 to 64 of a-z, 0-9, '.', '_', '-').
        username: String,
        /// The e-mail address (one account per address).
        #[arg(long)]
        email: String,
        /// customer, merchant or operator.
        #[arg(long, default_value = "customer")]
        role: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Approves a pending merchant's application.
    ///
    /// Example: bazaar users approve potter
    Approve {
        /// The user name.
        username: String,
    },
    /// Refuses a pending merchant's application.
    ///
    /// Example: bazaar users refuse potter
    Refuse {
        /// The user name.
        username: String,
    },
    /// Disables a user: no sign-in, and its tokens are refused everywhere within a minute.
    ///
    /// Example: bazaar users disable customer-2
    Disable {
        /// The user name.
        username: String,
    },
    /// Enables a disabled user again (it signs in afresh).
    ///
    /// Example: bazaar users enable customer-2
    Enable {
        /// The user name.
        username: String,
    },
    /// Sets a user's feature flags, replacing those it had: every flow the user's requests
    /// start carries them, from its next token on (within 15 minutes). `test-order` makes the
    /// user's orders tests (charged in the provider's test mode, notified to no one), as the
    /// smoke test's customer must be; `search-ranking-v2` ranks its searches by relevance.
    ///
    /// Example: bazaar --aws --stage prod users flags smoke-customer test-order
    Flags {
        /// The user name.
        username: String,
        /// Flags as name or name=value (a name alone is true).
        flags: Vec<String>,
        /// Remove every flag (instead of naming some).
        #[arg(long, conflicts_with = "flags")]
        clear: bool,
    },
    /// Lists users by name.
    ///
    /// Example: bazaar users list --status pending --json
    List {
        /// Only users of this status: active, pending, refused or disabled.
        #[arg(long)]
        status: Option<String>,
        /// Only users holding (or applying for) this role: customer, merchant or operator.
        #[arg(long)]
        role: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ChannelsCommand {
    /// Where each channel stands.
    ///
    /// Example: bazaar channels status --json
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Sends a channel's listings again on its broker's next run (within a minute), whatever
    /// the channel last confirmed: every listed sku, or one.
    ///
    /// Example: bazaar channels resync agora --sku MUG-01
    Resync {
        /// The channel: agora or souk.
        channel: String,
        /// Only this sku.
        #[arg(long)]
        sku: Option<String>,
    },
}

#[derive(Subcommand)]
enum DlqCommand {
    /// Dead letters of a queue grouped by failure reason and type, with counts and when the
    /// first and last arrived.
    ///
    /// Example: bazaar dlq list orders-saga
    List {
        /// The queue: its consumer (orders-saga), its logical id or name, or the DLQ's.
        queue: String,
        /// One line per message, with its id (for `dlq show`).
        #[arg(long)]
        ids: bool,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One dead letter: envelope, attributes, reason and receive count.
    ///
    /// Example: bazaar dlq show orders-saga 5d0c2a8e-1b7f-4e0a-9c1d-2f3e4a5b6c7d
    Show {
        /// The queue: its consumer, its logical id or name, or the DLQ's.
        queue: String,
        /// The envelope id or the DLQ's message id.
        id: String,
    },
    /// Moves dead letters back to the queue they came from (or --to another), deleting each
    /// from the DLQ only after it was sent, with one audit record per message.
    ///
    /// Example: bazaar dlq replay notifier --reason unknown-type --max 10 --rate 5
    Replay {
        /// The queue: its consumer, its logical id or name, or the DLQ's.
        queue: String,
        /// Send to this queue instead of each message's source.
        #[arg(long)]
        to: Option<String>,
        /// Only these types (exact, or a prefix ending in `*`); repeatable.
        #[arg(long = "type", value_name = "TYPE")]
        types: Vec<String>,
        /// Only these failure reasons (as `dlq list` shows them); repeatable.
        #[arg(long = "reason", value_name = "REASON")]
        reasons: Vec<String>,
        /// Only this flow.
        #[arg(long)]
        correlation_id: Option<String>,
        /// Only letters that arrived since a time (RFC 3339) or an age ago (30m, 2h, 1d).
        #[arg(long)]
        since: Option<String>,
        /// Move at most this many.
        #[arg(long)]
        max: Option<usize>,
        /// Messages per second at most.
        #[arg(long)]
        rate: Option<f64>,
        /// Print what would move, and move nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// The audit records of every message moved out of a DLQ.
    ///
    /// Example: bazaar dlq audit
    Audit,
}

/// The template's model for the `--stage`.
fn model(args: &TargetArgs) -> anyhow::Result<StackModel> {
    let parameters = BTreeMap::from([("Stage".to_string(), args.stage.clone())]);
    StackModel::load_local(&args.template, &parameters).with_context(|| {
        format!(
            "reading {} (run bazaar from the repository, or pass --template)",
            args.template.display()
        )
    })
}

/// `bazaar sam env-vars`.
async fn sam_env_vars(
    args: &TargetArgs,
    function_endpoint: Option<&str>,
    out: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let Some(endpoint) = args.endpoint_url.as_deref() else {
        bail!(
            "sam env-vars needs --endpoint-url: it binds the functions to a stack on an AWS-compatible endpoint (scripts/dev --endpoint-url URL provisions one)"
        );
    };
    let model = model(args)?;
    let config = bazaar_aws::tool_config(Some(endpoint)).await?;
    let provisioned = bazaar_localstack::aws::provision(&model, &config)
        .await
        .with_context(|| format!("reading the stack's resources on {endpoint}"))?;
    for change in &provisioned.changes {
        eprintln!("on {endpoint}: {change}");
    }
    let function_endpoint = function_endpoint
        .map(str::to_string)
        .unwrap_or_else(|| bazaar_toolbelt::sam::container_endpoint(endpoint));
    let file = bazaar_toolbelt::sam::env_vars(&model, &provisioned, &function_endpoint);
    let text = serde_json::to_string_pretty(&file)? + "\n";
    match out {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
            eprintln!(
                "wrote {} ({} functions; AWS_ENDPOINT_URL={function_endpoint}). Then, for example:\n  sam local invoke OrdersSagaFunction --env-vars {} --event events/orders-saga.sqs.json --add-host host.docker.internal:host-gateway --parameter-overrides Architecture=x86_64",
                path.display(),
                model.functions.len(),
                path.display()
            );
        }
        None => print!("{text}"),
    }
    Ok(())
}

fn target(args: &TargetArgs, runtime: &tokio::runtime::Runtime) -> anyhow::Result<Target> {
    let model = model(args)?;
    if args.aws || args.endpoint_url.is_some() {
        let config = runtime.block_on(bazaar_aws::tool_config(args.endpoint_url.as_deref()))?;
        return Ok(Target::new(
            model,
            Arc::new(bazaar_toolbelt::aws::AwsBackend::new(&config)),
        ));
    }
    let path = args.data_dir.join("local.sqlite");
    if !path.exists() {
        bail!(
            "no local stack data at {}: start one with scripts/dev, pass --data-dir, or use --aws for AWS",
            path.display()
        );
    }
    let engine = Engine::open(&path, Arc::new(SystemClock))
        .with_context(|| format!("opening {}", path.display()))?;
    for q in model.queues.values() {
        engine.create_queue(q.clone())?;
    }
    for t in model.tables.values() {
        engine.create_table(t)?;
    }
    for name in model.topics.values() {
        engine.create_topic(name);
    }
    for s in &model.subscriptions {
        engine.subscribe(
            &s.topic,
            bazaar_embedded::Subscription {
                queue: s.queue.clone(),
                filter_policy: s.filter_policy.clone(),
                scope: s.scope,
                raw: s.raw,
            },
        )?;
    }
    Ok(Target::new(
        model,
        Arc::new(LocalBackend::new(
            engine,
            format!("local stack ({})", path.display()),
        )),
    ))
}

/// Prints the replay's progress bar, its audit lines, and keeps the rate.
struct Console {
    every: Option<Duration>,
    last: Option<Instant>,
    bar: bool,
}

impl Observer for Console {
    fn before_send(&mut self) {
        if let (Some(every), Some(last)) = (self.every, self.last) {
            let elapsed = last.elapsed();
            if elapsed < every {
                std::thread::sleep(every - elapsed);
            }
        }
        self.last = Some(Instant::now());
    }

    fn moved(&mut self, record: &AuditRecord, done: usize, total: usize) {
        if self.bar {
            eprint!("\r{:<80}\r", "");
        }
        println!("{}", render::audit_line(record));
        if self.bar {
            bazaar_toolbelt::replay::progress_bar(done, total);
        }
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| {
            if let Command::Smoke {
                api,
                identity,
                card_token,
                timeout,
            } = &cli.command
            {
                return runtime.block_on(smoke(api, identity.as_deref(), card_token, *timeout));
            }
            if let Command::Sam(SamCommand::EnvVars {
                function_endpoint_url,
                out,
            }) = &cli.command
            {
                return runtime.block_on(sam_env_vars(
                    &cli.target,
                    function_endpoint_url.as_deref(),
                    out.as_deref(),
                ));
            }
            let target = target(&cli.target, &runtime)?;
            if let Command::Top {
                once,
                window,
                every,
                all,
            } = &cli.command
            {
                // On AWS itself the functions' lines are in CloudWatch; on an endpoint that
                // `scripts/dev --endpoint-url` runs, the stack still writes them here.
                let on_aws = cli.target.aws && cli.target.endpoint_url.is_none();
                let emf = cli
                    .target
                    .data_dir
                    .join(bazaar_platform::telemetry::EmfFile::FILE_NAME);
                let emf = (!on_aws).then_some(emf.as_path());
                let every = Duration::from_secs(*every);
                return runtime.block_on(top(&target, emf, *window, *once, every, *all));
            }
            runtime.block_on(run(cli.command, &target))
        });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The chain of causes on one line each; no backtrace: this is for people.
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  because: {cause}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

/// `bazaar top`: one screen with `once`, else a screen every `every`, drawn over the last
/// one (cursor home, each line cleared to its end, the rest of the screen cleared) so that
/// it refreshes in place without flicker. Not on a terminal, screens follow one another.
async fn top(
    target: &Target,
    emf: Option<&std::path::Path>,
    window: chrono::Duration,
    once: bool,
    every: Duration,
    all: bool,
) -> anyhow::Result<()> {
    let terminal = std::io::stdout().is_terminal();
    let mut first = true;
    loop {
        let screen = bazaar_toolbelt::top::snapshot(target, emf, window).await?;
        let text = render::top(&screen, all);
        let mut out = std::io::stdout().lock();
        if once {
            write!(out, "{text}")?;
            return Ok(());
        }
        if terminal {
            write!(out, "{}\x1b[H", if first { "\x1b[2J" } else { "" })?;
            first = false;
            for line in text.lines() {
                writeln!(out, "{line}\x1b[K")?;
            }
            write!(
                out,
                "(every {}s; Ctrl-C stops)\x1b[K\n\x1b[J",
                every.as_secs()
            )?;
        } else {
            writeln!(out, "{text}")?;
        }
        out.flush()?;
        drop(out);
        tokio::time::sleep(every).await;
    }
}

/// The password of `users create`: standard input's first line, or BAZAAR_USER_PASSWORD.
fn new_password(from_stdin: bool) -> anyhow::Result<String> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        let password = line.trim_end_matches(['\r', '\n']).to_string();
        if password.is_empty() {
            bail!("standard input gave no password");
        }
        return Ok(password);
    }
    std::env::var("BAZAAR_USER_PASSWORD").map_err(|_| {
        anyhow::anyhow!(
            "no password: pipe it in with --password-stdin, or set BAZAAR_USER_PASSWORD (never on the command line)"
        )
    })
}

async fn users_command(command: UsersCommand, target: &Target) -> anyhow::Result<()> {
    use bazaar_toolbelt::users;
    use identity_api::accounts::{Change, UserFilter};
    let show = |u: &identity_api::accounts::UserSummary| print!("{}", users::render_one(u));
    match command {
        UsersCommand::Create {
            username,
            email,
            role,
            password_stdin,
        } => {
            let role = users::parse_role(&role)?;
            let password = new_password(password_stdin)?;
            let user = users::create(target, &username, &email, &password, role).await?;
            println!("made {} ({}), active", user.username, role.as_str());
        }
        UsersCommand::Approve { username } => {
            show(&users::change(target, &username, Change::Approve).await?)
        }
        UsersCommand::Refuse { username } => {
            show(&users::change(target, &username, Change::Refuse).await?)
        }
        UsersCommand::Disable { username } => {
            show(&users::change(target, &username, Change::Disable).await?);
            println!("its tokens are refused everywhere within a minute");
        }
        UsersCommand::Enable { username } => {
            show(&users::change(target, &username, Change::Enable).await?)
        }
        UsersCommand::Flags {
            username,
            flags,
            clear,
        } => {
            if flags.is_empty() && !clear {
                anyhow::bail!(
                    "name the flags to set (test-order, search-ranking-v2=true), or --clear to remove them"
                );
            }
            let flags = bazaar_contracts::Flags::decode(&flags.join(","))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            show(&users::set_flags(target, &username, flags).await?);
            println!(
                "its next token carries them (tokens already issued keep theirs until they expire)"
            );
        }
        UsersCommand::List { status, role, json } => {
            let filter = UserFilter {
                status: status.as_deref().map(users::parse_status).transpose()?,
                role: match role.as_deref() {
                    None => None,
                    Some(r) => Some(users::parse_role(r)?.as_str().to_string()),
                },
            };
            let list = users::list(target, &filter).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                print!("{}", users::render(&list));
            }
        }
    }
    Ok(())
}

fn credentials(var: &str) -> anyhow::Result<(String, String)> {
    let value = std::env::var(var).with_context(|| {
        format!("{var} is not set: give a user of the deployed stage as user:password")
    })?;
    let (user, password) = value
        .split_once(':')
        .with_context(|| format!("{var} must be user:password"))?;
    Ok((user.to_string(), password.to_string()))
}

async fn smoke(
    api: &str,
    identity: Option<&str>,
    card_token: &str,
    timeout: u64,
) -> anyhow::Result<()> {
    use bazaar_toolbelt::smoke;
    let settings = smoke::Settings {
        api: api.to_string(),
        identity: identity.unwrap_or(api).to_string(),
        customer: credentials("SMOKE_CUSTOMER")?,
        merchant: credentials("SMOKE_MERCHANT")?,
        card_token: card_token.to_string(),
        attempts: timeout.max(1) as usize,
        run_id: uuid::Uuid::new_v4().simple().to_string()[..8].to_string(),
    };
    let transport = smoke::HttpsTransport::default();
    let mut wait = || -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        eprint!(".");
        Box::pin(tokio::time::sleep(Duration::from_secs(1)))
    };
    let report = smoke::run(&transport, &settings, &mut wait).await?;
    eprintln!();
    for step in &report.steps {
        println!("ok  {step}");
    }
    println!("smoke test passed");
    Ok(())
}

async fn run(command: Command, target: &Target) -> anyhow::Result<()> {
    match command {
        Command::Smoke { .. } => unreachable!("handled before the target is read"),
        Command::Top { .. } => unreachable!("handled before the command runs"),
        Command::Sam(_) => unreachable!("handled before the target is read"),
        Command::Queues { json } => {
            let rows = bazaar_toolbelt::queues(target).await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&bazaar_toolbelt::queues_json(&rows))?
                );
            } else {
                print!("{}", render::queues(&rows));
            }
        }
        Command::Dlq(command) => dlq_command(command, target).await?,
        Command::Migrate(MigrateCommand::List { json }) => {
            let rows = bazaar_toolbelt::migrate::list(target).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print!("{}", bazaar_toolbelt::migrate::render_list(&rows));
            }
        }
        Command::Migrate(MigrateCommand::Plan { id, rate }) => {
            anyhow::ensure!(rate > 0.0, "--rate must be above 0");
            let m = bazaar_toolbelt::migrate::find(&id)?;
            let r = bazaar_toolbelt::migrate::runner(
                target,
                m.as_ref(),
                rate,
                bazaar_toolbelt::migrate::DEFAULT_PAGE,
            )?;
            let plan = r.plan(m.as_ref()).await?;
            print!(
                "{}",
                bazaar_toolbelt::migrate::render_plan(m.as_ref(), &plan)
            );
        }
        Command::Migrate(MigrateCommand::Apply {
            id,
            rate,
            page,
            restart,
        }) => {
            anyhow::ensure!(rate > 0.0, "--rate must be above 0");
            anyhow::ensure!((1..=1000).contains(&page), "--page takes 1 to 1000 items");
            let m = bazaar_toolbelt::migrate::find(&id)?;
            let done =
                bazaar_toolbelt::migrate::apply(target, m.as_ref(), rate, page, restart).await?;
            println!(
                "{}: done: {} items read, {} changed, {} already in shape, {} retried after a concurrent write, {} failed",
                m.id(),
                done.scanned,
                done.changed,
                done.unchanged,
                done.retried,
                done.failed
            );
            anyhow::ensure!(
                done.failed == 0,
                "{} items could not be migrated (their keys are in the log above); fix and run again",
                done.failed
            );
        }
        Command::Secrets(SecretsCommand::List { json }) => {
            let rows = bazaar_toolbelt::secrets::list(target).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print!("{}", render::secrets(&rows));
            }
        }
        Command::Secrets(SecretsCommand::Put { secret, from_file }) => {
            let from = match from_file {
                Some(path) => bazaar_toolbelt::secrets::Value::File(path),
                None => bazaar_toolbelt::secrets::Value::Stdin,
            };
            let value = bazaar_toolbelt::secrets::read_value(&from)?;
            let name = bazaar_toolbelt::secrets::put(target, &secret, &value).await?;
            println!(
                "{name}: new value in place ({} characters; the previous one kept as AWSPREVIOUS). Functions read it within 5 minutes, without a deploy.",
                value.chars().count()
            );
        }
        Command::Users(command) => users_command(command, target).await?,
        Command::Channels(ChannelsCommand::Status { json }) => {
            let rows = bazaar_toolbelt::channels::status(target).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print!("{}", bazaar_toolbelt::channels::render_status(&rows));
            }
        }
        Command::Channels(ChannelsCommand::Resync { channel, sku }) => {
            let marked =
                bazaar_toolbelt::channels::resync(target, &channel, sku.as_deref()).await?;
            println!(
                "{} listing(s) of {channel} marked; its broker sends them within a minute: {}",
                marked.len(),
                marked.join(", ")
            );
        }
        Command::Publish {
            message_type,
            file,
            version,
            correlation_id,
        } => {
            let text = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?
            };
            let payload: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", file.display()))?;
            let p = bazaar_toolbelt::publish::publish(
                target,
                &message_type,
                payload,
                version,
                correlation_id,
            )
            .await?;
            println!(
                "published {} v{} to {}\n  id           {}\n  correlation  {}",
                p.envelope.message_type,
                p.envelope.data_version,
                p.topic,
                p.envelope.id,
                p.envelope.correlation_id
            );
        }
        Command::Trace { what, json, otlp } => {
            let Some(resolved) = bazaar_toolbelt::trace::resolve(target, &what).await? else {
                let flows = bazaar_toolbelt::trace::flows_of_sku(target, &what).await?;
                if flows.is_empty() {
                    anyhow::bail!(
                        "nothing archived for {what:?}: not an order id, a channel's order id (agora, souk), a sku or a correlation id the archive knows (the archiver may not have run yet)"
                    );
                }
                if otlp {
                    anyhow::bail!(
                        "{what} is a sku, touched by {} flows: export one of them (bazaar trace <flow> --otlp)",
                        flows.len()
                    );
                }
                if json {
                    let value: Vec<serde_json::Value> = flows
                        .iter()
                        .map(|f| serde_json::json!({"correlation_id": f.correlation_id, "first_type": f.first_type, "time": f.time}))
                        .collect();
                    println!("{}", serde_json::to_string_pretty(&value)?);
                } else {
                    print!("{}", render::sku_flows(&what, &flows));
                }
                return Ok(());
            };
            let id = &resolved.correlation_id;
            let nodes = bazaar_toolbelt::trace::trace(target, id).await?;
            if otlp {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&bazaar_toolbelt::trace::otlp(id, &nodes))?
                );
            } else if json {
                let value: Vec<serde_json::Value> = nodes
                    .iter()
                    .map(|n| {
                        serde_json::json!({
                            "depth": n.depth, "id": n.id, "type": n.message_type,
                            "time": n.time, "source": n.source,
                            "causation_id": n.causation_id,
                            "trace_id": n.trace.map(|t| t.trace_id.hex()),
                            "parent_span_id": n.trace.map(|t| t.parent_id.hex()),
                            "joined": n.joined(),
                            "outcomes": n.outcomes.iter().map(|c| serde_json::json!({
                                "function": c.function,
                                "outcome": format!("{:?}", c.handling),
                                "queued_ms": c.waited(n.time).map(|d| d.num_microseconds().unwrap_or(0) as f64 / 1000.0),
                                "ran_ms": c.ran().map(|d| d.num_microseconds().unwrap_or(0) as f64 / 1000.0),
                            })).collect::<Vec<_>>(),
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                if resolved.how != "order or correlation id" {
                    println!("{what}: {} → flow {id}", resolved.how);
                }
                print!("{}", render::trace(id, &nodes));
            }
        }
        Command::Replay {
            types,
            to,
            empty_table,
            dry_run,
        } => {
            use bazaar_toolbelt::replay;
            let plan = replay::plan(target, &types, &to, |read| {
                eprint!("\rreading the archive: {read} items");
            })
            .await?;
            eprintln!();
            println!(
                "{} archived events of {} into {} ({})",
                plan.envelopes.len(),
                plan.types.join(", "),
                plan.function,
                plan.queue
            );
            if !plan.skipped.is_empty() {
                println!(
                    "not sent ({} does not subscribe to them): {}",
                    plan.function,
                    plan.skipped.join(", ")
                );
            }
            if dry_run {
                for e in &plan.envelopes {
                    println!(
                        "  {} {} {}",
                        e.time.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
                        e.message_type,
                        e.id
                    );
                }
                println!("dry run: nothing sent");
                return Ok(());
            }
            if empty_table {
                let n = replay::empty_table(target, &plan).await?;
                println!("emptied {}'s table: {n} items", plan.function);
            }
            let sent = replay::send(target, &plan, replay::progress_bar).await?;
            println!(
                "sent {sent}; the running stack delivers them to {}",
                plan.function
            );
        }
    }
    Ok(())
}

async fn dlq_command(command: DlqCommand, target: &Target) -> anyhow::Result<()> {
    match command {
        DlqCommand::List { queue, ids, json } => {
            let dlq = target.dead_letter_queue(&queue)?;
            let letters = dlq::letters(target, &dlq).await?;
            let groups = dlq::group(&letters);
            if json {
                let value: Vec<serde_json::Value> = groups
                    .iter()
                    .map(|g| serde_json::json!({"reason": g.reason, "type": g.message_type, "count": g.count, "first_seen": g.first_seen, "last_seen": g.last_seen, "example": g.example}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else if ids {
                print!("{}", render::letter_lines(&letters));
            } else {
                print!("{}", render::groups(&dlq.name, &groups));
            }
        }
        DlqCommand::Show { queue, id } => {
            let dlq = target.dead_letter_queue(&queue)?;
            let letter = dlq::find(target, &dlq, &id).await?;
            print!("{}", render::letter(&letter));
        }
        DlqCommand::Replay {
            queue,
            to,
            types,
            reasons,
            correlation_id,
            since,
            max,
            rate,
            dry_run,
        } => {
            let dlq = target.dead_letter_queue(&queue)?;
            let to = to.map(|t| target.queue(&t)).transpose()?;
            let since = since
                .map(|s| dlq::parse_since(&s, target.backend.now()))
                .transpose()?;
            if let Some(r) = rate
                && !(r > 0.0 && r.is_finite())
            {
                bail!("--rate {r}: give a number of messages per second above 0");
            }
            let selection = Selection {
                types,
                reasons,
                correlation_id,
                since,
                max,
            };
            let mut console = Console {
                every: rate.map(|r| Duration::from_secs_f64(1.0 / r)),
                last: None,
                bar: std::io::stderr().is_terminal(),
            };
            // The letters stay hidden while the replay runs: long enough for the rate.
            let hold = 300u32.max(
                rate.map(|r| (dlq::MAX_SCAN as f64 / r) as u32 + 60)
                    .unwrap_or(0),
            );
            eprintln!("{}: {}", target.backend.describe(), dlq.name);
            let report = dlq::replay(
                target,
                &dlq,
                &selection,
                to.as_ref(),
                dry_run,
                hold.min(43_200),
                &mut console,
            )
            .await?;
            if dry_run {
                print!("{}", render::plan(&report.planned));
                println!(
                    "dry run: {} would move, {} stay; nothing moved",
                    report.planned.iter().filter(|p| p.to.is_ok()).count(),
                    report.not_selected + report.planned.iter().filter(|p| p.to.is_err()).count()
                );
                return Ok(());
            }
            let stuck = report.planned.iter().filter(|p| p.to.is_err()).count();
            println!(
                "moved {} of {} selected; {} not selected stay in {}",
                report.moved,
                report.planned.len(),
                report.not_selected,
                dlq.logical_id
            );
            if stuck > 0 {
                println!("{stuck} stay: no destination known (see --dry-run); pass --to");
            }
            if report.stale > 0 {
                println!(
                    "{} were received by someone else during the replay and may be moved twice; consumers deduplicate them",
                    report.stale
                );
            }
            let _ = std::io::stdout().flush();
        }
        DlqCommand::Audit => {
            let records = dlq::audit_records(target).await?;
            if records.is_empty() {
                println!("no message was ever moved out of a DLQ");
            }
            for r in &records {
                println!("{}", render::audit_line(r));
            }
        }
    }
    Ok(())
}
