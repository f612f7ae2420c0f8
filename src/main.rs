//! `minispod`: run the gateway, migrate, seed, export the schema or probe a running gateway.
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use minispod_gateway::{app, config::Config, db::Db, graphql, healthcheck, migrations, telemetry};

#[derive(Parser)]
#[command(name = "minispod", version, about = "MinisPod Gateway: the GraphQL API of the MinisPod app platform")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (default): migrates, seeds an empty database and serves GraphQL.
    Serve,
    /// Run database migrations.
    Migrate {
        #[command(subcommand)]
        action: MigrateAction,
    },
    /// Seed the administrator and the demo data (idempotent).
    Seed,
    /// Print the GraphQL SDL (the committed schema.graphql).
    ExportSchema,
    /// Probe the gateway on MINISPOD_LISTEN: exit 0 when GET /healthz answers 200 within 2 s, else 1.
    Healthcheck,
}

#[derive(Subcommand)]
enum MigrateAction {
    /// Apply all pending migrations.
    Up,
    /// Roll back the last migration.
    Down,
    /// Show applied and pending migrations.
    Status,
    /// Drop all tables and re-apply every migration (destroys data).
    Fresh,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::ExportSchema) = cli.command {
        print!("{}", graphql::sdl());
        return ExitCode::SUCCESS;
    }
    if let Some(Command::Healthcheck) = cli.command {
        return run_healthcheck().await;
    }
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("minispod: {e}");
            return ExitCode::from(2);
        }
    };
    let _tracing = telemetry::logging::init(&config);
    let json = config.log_json;
    match run(cli.command.unwrap_or(Command::Serve), config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Once: a JSON log line for log collectors, otherwise one line on stderr.
            let line = format!("{e:#}").split_whitespace().collect::<Vec<_>>().join(" ");
            if json {
                tracing::error!("{line}");
            } else {
                eprintln!("minispod: {line}");
            }
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve => {
            let app = app::App::build(config).await?;
            let url = format!("http://{}", app.addr);
            tracing::info!("MinisPod Gateway listening on {url}");
            println!("\n  MinisPod Gateway is running.\n  GraphiQL: {url}/graphiql\n  GraphQL:  {url}/graphql\n");
            app.run(app::shutdown_signal()).await
        }
        Command::Migrate { action } => {
            app::init_crypto();
            let db = Db::connect_within(&config.database_url, config.db_connect_timeout).await?;
            match action {
                MigrateAction::Up => match migrations::up(&db).await?.as_slice() {
                    [] => println!("the database is up to date"),
                    applied => println!("applied {} migration(s): {}", applied.len(), applied.join(", ")),
                },
                MigrateAction::Down => match migrations::down(&db).await? {
                    Some(name) => println!("rolled back {name}"),
                    None => println!("no migration is applied"),
                },
                MigrateAction::Status => print!("{}", migrations::render_status(&migrations::status(&db).await?)),
                MigrateAction::Fresh => {
                    println!("dropped all tables and applied {} migration(s)", migrations::fresh(&db).await?)
                }
            }
            Ok(())
        }
        Command::Seed => {
            let state = app::build_state(config, std::sync::Arc::new(minispod_gateway::clock::SystemClock)).await?;
            let lock = state.db.startup_lock().await?;
            minispod_gateway::seed::ensure_admin(&state).await?;
            minispod_gateway::seed::seed_demo(&state).await?;
            lock.release().await?;
            println!("seeded");
            Ok(())
        }
        Command::ExportSchema | Command::Healthcheck => Ok(()),
    }
}

/// Reads only MINISPOD_LISTEN: the probe shares the server's environment and must not fail on
/// settings it never uses. Exit codes are HEALTHCHECK's: 0 healthy, 1 unhealthy (Docker reserves
/// 2, so an invalid MINISPOD_LISTEN is unhealthy here; the server refuses to start on it anyway).
async fn run_healthcheck() -> ExitCode {
    let result = match Config::listen_from_env() {
        Ok(listen) => healthcheck::check(listen, healthcheck::TIMEOUT).await,
        Err(e) => Err(e.into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("minispod healthcheck: {e:#}");
            ExitCode::FAILURE
        }
    }
}
