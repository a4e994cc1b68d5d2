//! The `verify-push-server` binary: parse the command line and hand over to the library.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use verify_push_server::clock::SystemClock;
use verify_push_server::config::{Cli, Command, ServeArgs};
use verify_push_server::startup::{self, Application};
use verify_push_server::store::Store;
use verify_push_server::telemetry;

#[actix_web::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init();
    let outcome = match cli.command {
        None => serve(cli.serve).await,
        Some(Command::Serve(args)) => serve(*args).await,
        Some(Command::Migrate(db)) => match Store::connect(&db.database_url, 1).await {
            Ok(store) => {
                store.close().await;
                println!("migrations applied");
                Ok(())
            }
            Err(e) => Err(e),
        },
        Some(Command::Healthcheck(args)) => startup::healthcheck(&args.bind).await.map(|()| println!("healthy")),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("verify-push-server: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let app = Application::build(args, Arc::new(SystemClock)).await?;
    if let Some(info) = app.self_signed.as_ref().filter(|i| i.created_ca) {
        println!("{}", verify_push_server::tls::install_instructions(&info.ca_pem));
    }
    if let Some(account) = &app.generated_account {
        print_generated_account(&account.account_sid, &account.auth_token, app.public_url());
    }
    app.run_until_stopped().await?;
    Ok(())
}

/// Shown once, when the first start generated the account.
fn print_generated_account(sid: &str, token: &str, url: &str) {
    let lines = [
        String::new(),
        "=== verify-push-server generated an account (shown only this once; it is kept in the database) ===".into(),
        format!("  TWILIO_ACCOUNT_SID={sid}"),
        format!("  TWILIO_AUTH_TOKEN={token}"),
        String::new(),
        "twilio-python:".into(),
        "  from twilio.rest import Client".into(),
        format!("  client = Client(\"{sid}\", \"{token}\")"),
        format!("  client.verify.base_url = \"{url}\""),
        String::new(),
        "twilio-node:".into(),
        format!("  const client = require(\"twilio\")(\"{sid}\", \"{token}\");"),
        format!("  client.verify.baseUrl = \"{url}\";"),
        String::new(),
        "To choose your own, set VERIFY_PUSH_ACCOUNT_SID and VERIFY_PUSH_AUTH_TOKEN.".into(),
        String::new(),
    ];
    println!("{}", lines.join("\n"));
}
