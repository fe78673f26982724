//! `parley healthcheck`: asks the running bot's `/healthz`, for Docker's HEALTHCHECK (slim
//! images have no curl).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, bail};

/// How long the health check waits for an answer.
const WAIT: Duration = Duration::from_secs(5);

/// GETs `/healthz` on `listen`, the bot's `http.listen` (a wildcard address is asked on
/// loopback); errors unless the answer is 200.
pub async fn healthcheck(listen: Option<SocketAddr>) -> anyhow::Result<String> {
    let Some(address) = listen else {
        bail!("http.listen is empty, so there is no health endpoint to ask");
    };
    let url = format!("http://{}/healthz", loopback_if_wildcard(address));
    let client = reqwest::Client::builder()
        .timeout(WAIT)
        .build()
        .context("building the HTTP client")?;
    let response = client
        .get(&url)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if !status.is_success() {
        bail!("{url} answered {status}: {body}");
    }
    Ok(body)
}

fn loopback_if_wildcard(mut address: SocketAddr) -> SocketAddr {
    match address.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => address.set_ip(Ipv4Addr::LOCALHOST.into()),
        IpAddr::V6(ip) if ip.is_unspecified() => address.set_ip(Ipv6Addr::LOCALHOST.into()),
        _ => {}
    }
    address
}
