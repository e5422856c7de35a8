//! The federation file: the trust domains a gateway accepts, each bound to
//! its CA bundle, the roles it may hold and its CRLs (DESIGN.md §4).
//!
//! ```toml
//! [[domain]]
//! name = "org-a.example"
//! ca = "org-a.example/ca.pem"          # PEM, one or more CA certificates
//! roles = ["gateway", "operator"]
//! crls = ["org-a.example/crl.pem"]     # optional, PEM CRLs signed by that CA
//! ```
//!
//! Relative paths are relative to the federation file's directory. Unknown
//! fields, duplicate domains, unknown roles and an empty list of domains or
//! roles are refused; every error names the file, line, column and field.
//! `docs/identity.md` has the full format.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::spiffe::{Role, TrustDomain};

/// A federation file that could not be loaded. Every variant displays as one
/// line starting with `file` (and `:line:column` when the fault has a place).
#[derive(Debug, thiserror::Error)]
pub enum FederationError {
    /// The file could not be read.
    #[error("{}: cannot read federation file: {source}", file.display())]
    Unreadable {
        /// The federation file.
        file: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// TOML syntax or shape error, including unknown and missing fields
    /// (toml's message names the field).
    #[error("{}:{line}:{column}: {message}", file.display())]
    Syntax {
        /// The federation file.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column (characters).
        column: usize,
        /// What the parser found wrong.
        message: String,
    },
    /// A field's value is refused.
    #[error("{}:{line}:{column}: field `{field}`: {message}", file.display())]
    Invalid {
        /// The federation file.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column (characters).
        column: usize,
        /// The field, e.g. `roles`.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
}

/// One trust domain of the federation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainEntry {
    /// The trust domain.
    pub name: TrustDomain,
    /// The CA bundle file (absolute, or joined to the federation file's directory).
    pub ca: PathBuf,
    /// Roles certificates of this domain may carry.
    pub roles: Vec<Role>,
    /// CRL files (PEM), possibly none.
    pub crls: Vec<PathBuf>,
}

/// A parsed federation file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Federation {
    /// Where it was read from (used in error messages).
    pub file: PathBuf,
    /// The domains, in file order; names are unique.
    pub domains: Vec<DomainEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileForm {
    #[serde(rename = "domain", default)]
    domains: Vec<Spanned<DomainForm>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DomainForm {
    name: Spanned<String>,
    ca: Spanned<String>,
    roles: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    crls: Vec<Spanned<String>>,
}

impl Federation {
    /// Reads and parses a federation file.
    ///
    /// # Errors
    /// [`FederationError`] naming the file and, where it has one, the line,
    /// column and field of the fault.
    pub fn load(file: &Path) -> Result<Federation, FederationError> {
        let text = std::fs::read_to_string(file).map_err(|source| FederationError::Unreadable {
            file: file.to_owned(),
            source,
        })?;
        Federation::parse(file, &text)
    }

    /// Parses federation text; `file` names it in errors and anchors relative paths.
    ///
    /// # Errors
    /// As [`Federation::load`], less the I/O.
    pub fn parse(file: &Path, text: &str) -> Result<Federation, FederationError> {
        let at = |span: Range<usize>| line_column(text, span.start);
        let form: FileForm = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map_or((1, 1), at);
            FederationError::Syntax {
                file: file.to_owned(),
                line,
                column,
                message: e.message().trim().to_owned(),
            }
        })?;
        let invalid = |span: Range<usize>, field: &'static str, message: String| {
            let (line, column) = at(span);
            FederationError::Invalid {
                file: file.to_owned(),
                line,
                column,
                field,
                message,
            }
        };
        if form.domains.is_empty() {
            return Err(invalid(
                0..0,
                "domain",
                "no [[domain]] tables: the federation is empty".into(),
            ));
        }
        let base = file.parent().unwrap_or(Path::new(""));
        let mut seen: BTreeMap<TrustDomain, usize> = BTreeMap::new();
        let mut domains = Vec::with_capacity(form.domains.len());
        for entry in form.domains {
            let d = entry.into_inner();
            let name: TrustDomain = d
                .name
                .get_ref()
                .parse()
                .map_err(|e| invalid(d.name.span(), "name", format!("{e}")))?;
            if let Some(first) = seen.get(&name) {
                return Err(invalid(
                    d.name.span(),
                    "name",
                    format!("trust domain {name} is listed twice (first at line {first})"),
                ));
            }
            seen.insert(name.clone(), at(d.name.span()).0);
            if d.ca.get_ref().is_empty() {
                return Err(invalid(d.ca.span(), "ca", "empty path".into()));
            }
            if d.roles.get_ref().is_empty() {
                return Err(invalid(
                    d.roles.span(),
                    "roles",
                    format!("domain {name} allows no role"),
                ));
            }
            let mut roles = Vec::new();
            for r in d.roles.get_ref() {
                let role: Role = super::spiffe::parse_role(r.get_ref())
                    .map_err(|e| invalid(r.span(), "roles", format!("{e}")))?;
                if roles.contains(&role) {
                    return Err(invalid(
                        r.span(),
                        "roles",
                        format!("role {role} is listed twice"),
                    ));
                }
                roles.push(role);
            }
            let mut crls = Vec::new();
            for c in &d.crls {
                if c.get_ref().is_empty() {
                    return Err(invalid(c.span(), "crls", "empty path".into()));
                }
                crls.push(base.join(c.get_ref()));
            }
            domains.push(DomainEntry {
                name,
                ca: base.join(d.ca.get_ref()),
                roles,
                crls,
            });
        }
        Ok(Federation {
            file: file.to_owned(),
            domains,
        })
    }

    /// The entry for `domain`, if federated.
    pub fn domain(&self, domain: &TrustDomain) -> Option<&DomainEntry> {
        self.domains.iter().find(|d| &d.name == domain)
    }

    /// Every file the federation refers to (CA bundles and CRLs), for change detection.
    pub fn files(&self) -> Vec<PathBuf> {
        self.domains
            .iter()
            .flat_map(|d| std::iter::once(d.ca.clone()).chain(d.crls.iter().cloned()))
            .collect()
    }

    /// Renders a federation file for `domains` (paths written as given,
    /// relative to the file). Used by `escrowd certs init`.
    pub fn render(domains: &[(TrustDomain, String, Vec<Role>, Vec<String>)]) -> String {
        let mut out = String::from(
            "# escrowd federation: the trust domains this gateway accepts (docs/identity.md).\n\
             # Paths are relative to this file. Development material only.\n",
        );
        for (name, ca, roles, crls) in domains {
            let roles: Vec<String> = roles.iter().map(|r| format!("\"{r}\"")).collect();
            let crls: Vec<String> = crls.iter().map(|c| format!("\"{c}\"")).collect();
            out.push_str(&format!(
                "\n[[domain]]\nname = \"{name}\"\nca = \"{ca}\"\nroles = [{}]\ncrls = [{}]\n",
                roles.join(", "),
                crls.join(", ")
            ));
        }
        out
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Federation, FederationError> {
        Federation::parse(Path::new("/etc/escrowd/federation.toml"), text)
    }

    const GOOD: &str = r#"
[[domain]]
name = "org-a.example"
ca = "org-a.example/ca.pem"
roles = ["gateway", "operator"]
crls = ["org-a.example/crl.pem"]

[[domain]]
name = "notary.example"
ca = "/abs/notary-ca.pem"
roles = ["notary"]
"#;

    #[test]
    fn parses_domains_and_anchors_relative_paths() {
        let f = parse(GOOD).unwrap();
        assert_eq!(f.domains.len(), 2);
        assert_eq!(f.domains[0].name.as_str(), "org-a.example");
        assert_eq!(
            f.domains[0].ca,
            PathBuf::from("/etc/escrowd/org-a.example/ca.pem")
        );
        assert_eq!(f.domains[0].roles, vec![Role::Gateway, Role::Operator]);
        assert_eq!(
            f.domains[0].crls,
            vec![PathBuf::from("/etc/escrowd/org-a.example/crl.pem")]
        );
        assert_eq!(f.domains[1].ca, PathBuf::from("/abs/notary-ca.pem"));
        assert!(f.domains[1].crls.is_empty());
    }

    #[test]
    fn unknown_field_names_line_and_field() {
        let text = GOOD.replace(
            "roles = [\"notary\"]",
            "roles = [\"notary\"]\ncrl = \"x.pem\"",
        );
        let msg = parse(&text).unwrap_err().to_string();
        assert!(
            msg.starts_with("/etc/escrowd/federation.toml:12:1: unknown field `crl`"),
            "{msg}"
        );
        assert_eq!(msg.lines().count(), 1);
    }

    #[test]
    fn duplicate_domain_names_both_lines() {
        let text = GOOD.replace("notary.example", "org-a.example");
        let msg = parse(&text).unwrap_err().to_string();
        assert_eq!(
            msg,
            "/etc/escrowd/federation.toml:9:8: field `name`: trust domain org-a.example is listed twice (first at line 3)"
        );
    }

    #[test]
    fn unknown_role_and_empty_roles_are_refused() {
        let msg = parse(&GOOD.replace("\"notary\"]", "\"admin\"]"))
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with(
                "/etc/escrowd/federation.toml:11:10: field `roles`: unknown role \"admin\""
            ),
            "{msg}"
        );
        let msg = parse(&GOOD.replace("[\"notary\"]", "[]"))
            .unwrap_err()
            .to_string();
        assert_eq!(msg, "/etc/escrowd/federation.toml:11:9: field `roles`: domain notary.example allows no role");
    }

    #[test]
    fn missing_field_and_bad_domain_are_refused() {
        let msg = parse(&GOOD.replace("ca = \"/abs/notary-ca.pem\"\n", ""))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("missing field `ca`"), "{msg}");
        let msg = parse(&GOOD.replace("org-a.example\"\nca", "Org-A\"\nca"))
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with(
                "/etc/escrowd/federation.toml:3:8: field `name`: trust domain \"Org-A\""
            ),
            "{msg}"
        );
        let msg = parse("").unwrap_err().to_string();
        assert!(msg.contains("the federation is empty"), "{msg}");
    }

    #[test]
    fn render_parses_back() {
        let a: TrustDomain = "org-a.example".parse().unwrap();
        let text = Federation::render(&[(
            a.clone(),
            "org-a.example/ca.pem".into(),
            vec![Role::Gateway],
            vec![],
        )]);
        let f = parse(&text).unwrap();
        assert_eq!(f.domains[0].name, a);
        assert_eq!(f.domains[0].roles, vec![Role::Gateway]);
    }
}
