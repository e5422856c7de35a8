//! `escrowd certs init|issue|revoke`: development CAs, leaves and CRLs
//! (DESIGN.md §4, §7; layout in [`crate::identity::issue`]).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::Subcommand;

use super::{emitln, Failure};
use crate::identity::issue::{self, DomainPlan, IssueError, LeafRequest, Validity};
use crate::identity::spiffe::{SpiffeId, TrustDomain};
use crate::identity::trust::serial_hex;

/// Validity of dev certificates when `--days` is not given.
const DEFAULT_DAYS: u32 = 365;

/// `escrowd certs …`
#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Write a CA, an empty CRL and one leaf per role for each trust domain,
    /// and a federation.toml listing them (development material only).
    Init {
        /// Output directory (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// A trust domain, `NAME` or `NAME=ROLE,ROLE`; repeatable. Default:
        /// org-a.example, org-b.example (gateway, operator), notary.example
        /// (notary), observer.example (observer).
        #[arg(long = "domain")]
        domains: Vec<String>,
        /// Validity of every certificate, days from now.
        #[arg(long, default_value_t = DEFAULT_DAYS, value_parser = clap::value_parser!(u32).range(1..))]
        days: u32,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
    /// Issue one more leaf from the CA in DIR/DOMAIN/, written to
    /// DIR/DOMAIN/ROLE-NAME.pem and .key.
    Issue {
        /// The certs directory `certs init` wrote.
        #[arg(long)]
        dir: PathBuf,
        /// The leaf's SPIFFE ID, spiffe://DOMAIN/ROLE/NAME; its domain picks the CA.
        #[arg(long)]
        id: String,
        /// Validity, days from now (ignored where --not-before/--not-after are given).
        #[arg(long, default_value_t = DEFAULT_DAYS, value_parser = clap::value_parser!(u32).range(1..))]
        days: u32,
        /// notBefore, RFC 3339 (e.g. 2030-01-01T00:00:00Z).
        #[arg(long)]
        not_before: Option<String>,
        /// notAfter, RFC 3339.
        #[arg(long)]
        not_after: Option<String>,
        /// Extra DNS subject alternative name; repeatable.
        #[arg(long)]
        dns: Vec<String>,
        /// Extra IP subject alternative name; repeatable.
        #[arg(long)]
        ip: Vec<IpAddr>,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
    /// Revoke certificates: add them to DIR/DOMAIN/crl.pem (re-signed by the
    /// domain's CA, keeping earlier entries). Gateways pick it up on SIGHUP or
    /// within their reload poll interval.
    Revoke {
        /// The certs directory `certs init` wrote.
        #[arg(long)]
        dir: PathBuf,
        /// The trust domain whose CA issued the certificates.
        #[arg(long)]
        domain: String,
        /// A certificate file to revoke; repeatable.
        #[arg(long = "cert")]
        certs: Vec<PathBuf>,
        /// A serial number (hex) to revoke; repeatable.
        #[arg(long = "serial")]
        serials: Vec<String>,
        /// Days until the CRL's nextUpdate.
        #[arg(long, default_value_t = DEFAULT_DAYS, value_parser = clap::value_parser!(u32).range(1..))]
        days: u32,
    },
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn rfc3339(arg: &str, flag: &str) -> Result<u64, Failure> {
    humantime::parse_rfc3339(arg)
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
        .ok_or_else(|| {
            Failure::Usage(format!(
                "{flag} {arg:?} is not an RFC 3339 time such as 2030-01-01T00:00:00Z"
            ))
        })
}

fn failed(e: IssueError) -> Failure {
    Failure::Usage(e.to_string())
}

/// Runs a `certs` subcommand.
///
/// # Errors
/// [`Failure::Usage`] (exit 2) with one line naming the file or argument at fault.
pub fn run(command: CertsCommand) -> Result<(), Failure> {
    match command {
        CertsCommand::Init {
            out,
            domains,
            days,
            force,
        } => {
            let plans = if domains.is_empty() {
                DomainPlan::defaults()
            } else {
                domains
                    .iter()
                    .map(|d| {
                        DomainPlan::parse(d)
                            .map_err(|e| Failure::Usage(format!("--domain {d}: {e}")))
                    })
                    .collect::<Result<Vec<_>, _>>()?
            };
            let report = issue::init(&out, &plans, now(), days, force).map_err(failed)?;
            emitln(format!("wrote {}", report.federation.display()));
            for (id, cert, key) in report.leaves {
                emitln(format!("{id}\t{}\t{}", cert.display(), key.display()));
            }
            Ok(())
        }
        CertsCommand::Issue {
            dir,
            id,
            days,
            not_before,
            not_after,
            dns,
            ip,
            force,
        } => {
            let id: SpiffeId = id
                .parse()
                .map_err(|e| Failure::Usage(format!("--id: {e}")))?;
            let mut validity = Validity::days_from(now(), days);
            if let Some(t) = not_before {
                validity.not_before = rfc3339(&t, "--not-before")?;
            }
            if let Some(t) = not_after {
                validity.not_after = rfc3339(&t, "--not-after")?;
            }
            let req = LeafRequest {
                id: id.clone(),
                validity,
                dns,
                ips: ip,
            };
            let (leaf, cert, key) = issue::issue_into(&dir, &req, force).map_err(failed)?;
            emitln(format!(
                "{id}\t{}\t{}\tserial {}",
                cert.display(),
                key.display(),
                leaf.serial
            ));
            Ok(())
        }
        CertsCommand::Revoke {
            dir,
            domain,
            certs,
            serials,
            days,
        } => {
            let domain: TrustDomain = domain
                .parse()
                .map_err(|e| Failure::Usage(format!("--domain: {e}")))?;
            let mut all = serials;
            for file in &certs {
                let chain = crate::identity::pem::read_certificates(file)
                    .map_err(|e| Failure::Usage(e.to_string()))?;
                // read_certificates returns at least one certificate.
                if let Some(leaf) = chain.first() {
                    all.push(serial_hex(leaf));
                }
            }
            if all.is_empty() {
                return Err(Failure::Usage(
                    "nothing to revoke: give --cert FILE or --serial HEX".into(),
                ));
            }
            let listed = issue::revoke(&dir, &domain, &all, now(), days).map_err(failed)?;
            let crl = issue::CaPaths::new(&dir, &domain).crl;
            emitln(format!(
                "wrote {} ({} revoked: {})",
                crl.display(),
                listed.len(),
                listed.join(", ")
            ));
            Ok(())
        }
    }
}
