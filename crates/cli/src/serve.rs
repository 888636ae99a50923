//! `hallmark serve`: the listeners, from the arguments or the configuration,
//! handed to the server's serve loop.

use std::sync::Arc;

use clap::Args;
use hallmark_authority::Authority;

use crate::{Res, s};

#[derive(Args, Clone)]
pub struct ServeArgs {
    /// Listen address (overrides the config).
    #[arg(long)]
    pub listen: Option<String>,
    /// Also serve HTTPS here (overrides server.https_listen).
    #[arg(long)]
    pub https_listen: Option<String>,
    /// Also serve the admin API over mutual TLS here (overrides
    /// server.admin_https_listen); see `hallmark admin-cert`.
    #[arg(long)]
    pub admin_https_listen: Option<String>,
}

pub async fn serve(auth: Arc<Authority>, args: ServeArgs) -> Res {
    let cfg = auth.server_config();
    let listen = hallmark_server::serve::Listen {
        http: args.listen.unwrap_or_else(|| cfg.listen.clone()),
        https: args.https_listen.or_else(|| cfg.https_listen.clone()),
        admin_https: args
            .admin_https_listen
            .or_else(|| cfg.admin_https_listen.clone()),
    };
    hallmark_server::serve::serve(auth.clone(), listen, |line| {
        use std::io::Write;
        outln!("{line}");
        let _ = std::io::stdout().flush();
    })
    .await
    .map_err(s)
}
