//! What the services read about a saga from the event log: its terms and
//! our role (from `TermsProposed`, always the first event), and our
//! exposure to a counterparty on a chain.
//!
//! Both load whole logs: sagas are short (a few dozen events) and these
//! run once per proposal, BEEF or admin request, never per block.

use saga_core::saga::Event;
use saga_core::terms::{Role, SagaId, Terms, TermsSignature};
use saga_core::Satoshis;
use saga_runtime::log::{EventLog, ReadError, SagaFilter};

/// A saga's terms as its log records them.
#[derive(Debug, Clone)]
pub struct SagaTerms {
    /// The terms.
    pub terms: Terms,
    /// Our role.
    pub role: Role,
    /// The buyer's signature.
    pub buyer_signature: TermsSignature,
}

/// The terms and our role in saga `saga_id`, or `None` when the log holds
/// no `TermsProposed` for it (an unknown saga).
///
/// # Errors
/// [`ReadError`].
pub async fn saga_terms(
    log: &dyn EventLog<Event>,
    saga_id: &SagaId,
) -> Result<Option<SagaTerms>, ReadError> {
    let events = log.load(saga_id).await?;
    Ok(events.into_iter().find_map(|(_, e)| match e {
        Event::TermsProposed {
            role,
            terms,
            buyer_signature,
        } => Some(SagaTerms {
            terms: *terms,
            role,
            buyer_signature,
        }),
        _ => None,
    }))
}

/// Page size when walking every in-flight saga.
const PAGE: usize = 256;

/// Our satoshis locked (or about to be) with `counterparty` on `chain_id`:
/// the own-leg amounts of our in-flight sagas with that gateway whose own
/// leg is on that chain. What the policy's exposure limit is judged
/// against (`Input::Start`, `Input::Proposal`).
///
/// # Errors
/// [`ReadError`].
pub async fn exposure(
    log: &dyn EventLog<Event>,
    counterparty: &str,
    chain_id: &str,
) -> Result<Satoshis, ReadError> {
    let filter = SagaFilter {
        terminal: Some(false),
        state: None,
    };
    let mut total = 0u64;
    let mut after = None;
    loop {
        let page = log.list_sagas(&filter, after, PAGE).await?;
        for p in &page {
            let Some(t) = saga_terms(log, &p.saga_id).await? else {
                continue;
            };
            let own = t.terms.leg(t.role.funds());
            if t.terms.party(t.role.other()).spiffe_id == counterparty && own.chain_id == chain_id {
                total = total.saturating_add(own.amount.0);
            }
        }
        match page.last() {
            Some(last) if page.len() == PAGE => after = Some(last.saga_id),
            _ => return Ok(Satoshis(total)),
        }
    }
}
