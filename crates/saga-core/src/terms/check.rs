//! The check of a proposal against our own policy (DESIGN.md §3.3 step 0:
//! "GB checks its policy and answers with B's signature or a reason"), and
//! the reused-hashlock check (DESIGN.md §3.1).
//!
//! Everything the counterparty wrote is checked exactly, never trusted: the
//! identities, our own keys in the terms (so both escrow scripts pay whom
//! they should), amounts, confirmations, expiries, the notary, and the
//! timeline rules C1–C3 recomputed from the terms' refund heights and the
//! current chain tips with *our* policy's intervals, `K`, margins, `w` and `k`.

use std::collections::{BTreeSet, HashSet};
use std::fmt;

use bsv_format::keys::PublicKey;

use super::{Leg, Role, Terms, TermsError};
use crate::policy::timeline::{Rule, Timeline};
use crate::policy::Policy;
use crate::units::{Height, Satoshis, UnixTime};

/// What the check needs besides the terms and the policy: our identity and
/// keys, the time and both chains' current tips, and our exposure to the
/// counterparty. All inputs: the check reads no clock and no chain.
#[derive(Debug, Clone, Copy)]
pub struct CheckContext<'a> {
    /// Now, on our clock.
    pub now: UnixTime,
    /// Chain P's tip as our headers service reports it.
    pub payment_tip: Height,
    /// Chain D's tip as our headers service reports it.
    pub delivery_tip: Height,
    /// Our SPIFFE ID.
    pub own_spiffe_id: &'a str,
    /// The counterparty's SPIFFE ID as its mTLS certificate proves it.
    pub peer_spiffe_id: &'a str,
    /// Our saga key.
    pub own_saga_key: &'a PublicKey,
    /// Our escrow key on the payment leg.
    pub own_payment_escrow_key: &'a PublicKey,
    /// Our escrow key on the delivery leg.
    pub own_delivery_escrow_key: &'a PublicKey,
    /// Satoshis of ours already locked, on our leg's chain, in this
    /// counterparty's in-flight sagas (the store sums them).
    pub exposure: Satoshis,
}

/// Why our policy refuses a proposal. Each names the values compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// The terms do not name us in our role.
    NotUs {
        /// The SPIFFE ID the terms give our role.
        found: String,
    },
    /// The counterparty in the terms is not the caller.
    NotTheCaller {
        /// The SPIFFE ID the terms give the other role.
        in_terms: String,
    },
    /// The counterparty is not in `counterparties.allowed`.
    CounterpartyNotAllowed {
        /// Its SPIFFE ID.
        spiffe_id: String,
    },
    /// One of our keys in the terms is not ours.
    NotOurKey {
        /// The field (`seller.saga_key`, …).
        field: &'static str,
    },
    /// A leg's chain is not in our policy.
    UnknownChain {
        /// The leg.
        leg: Leg,
        /// Its chain id.
        chain_id: String,
    },
    /// A leg's amount is outside the chain's limits.
    AmountOutOfLimits {
        /// The leg.
        leg: Leg,
        /// The amount proposed.
        amount: Satoshis,
        /// The policy's minimum.
        min: Satoshis,
        /// The policy's maximum.
        max: Satoshis,
    },
    /// Our leg's amount would take our exposure to the counterparty past the limit.
    ExposureExceeded {
        /// Exposure with this saga.
        would_be: u128,
        /// The limit.
        limit: Satoshis,
    },
    /// A leg asks for fewer confirmations than our policy.
    TooFewConfirmations {
        /// The leg.
        leg: Leg,
        /// In the terms.
        proposed: u32,
        /// Our policy's.
        required: u32,
    },
    /// The quote expired (with the skew tolerance).
    QuoteExpired {
        /// The quote expiry.
        quote_expiry: UnixTime,
        /// Now.
        now: UnixTime,
    },
    /// A UTC deadline lies further ahead than our policy allows.
    DeadlineTooFar {
        /// `quote_expiry` or `reservation_deadline`.
        field: &'static str,
        /// In the terms.
        proposed: UnixTime,
        /// The latest we accept: now + the policy's duration + skew.
        latest: UnixTime,
    },
    /// The policy requires a notary and the terms name none.
    NotaryRequired,
    /// The terms name a notary our policy does not allow.
    NotaryNotAllowed {
        /// Its SPIFFE ID.
        spiffe_id: String,
    },
    /// A refund height is not above the chain's current tip.
    RefundHeightPassed {
        /// The leg.
        leg: Leg,
        /// `T`.
        refund_height: Height,
        /// The tip.
        tip: Height,
    },
    /// Our own leg's refund lies further ahead than our policy allows
    /// (its refund delay plus the chain's view lag).
    OwnRefundTooLate {
        /// Our leg.
        leg: Leg,
        /// Blocks from the current tip to `T`.
        blocks: u32,
        /// The most our policy allows.
        max: u32,
    },
    /// A timeline rule fails for the terms' heights from the current tips.
    Unsafe {
        /// The first failing rule.
        rule: Rule,
        /// The recomputed timeline.
        timeline: Box<Timeline>,
    },
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Denial::NotUs { found } => write!(f, "the terms name {found} in our role"),
            Denial::NotTheCaller { in_terms } => write!(
                f,
                "the terms name {in_terms} as counterparty, not the caller"
            ),
            Denial::CounterpartyNotAllowed { spiffe_id } => {
                write!(f, "counterparty {spiffe_id} is not allowed")
            }
            Denial::NotOurKey { field } => write!(f, "{field} is not our key"),
            Denial::UnknownChain { leg, chain_id } => {
                write!(f, "{leg} chain {chain_id} is not in our policy")
            }
            Denial::AmountOutOfLimits {
                leg,
                amount,
                min,
                max,
            } => {
                write!(f, "{leg} amount {} outside {}..={}", amount.0, min.0, max.0)
            }
            Denial::ExposureExceeded { would_be, limit } => {
                write!(
                    f,
                    "exposure to the counterparty would be {would_be} sat, over the limit {}",
                    limit.0
                )
            }
            Denial::TooFewConfirmations {
                leg,
                proposed,
                required,
            } => {
                write!(f, "{leg} confirmations {proposed} below our {required}")
            }
            Denial::QuoteExpired { quote_expiry, now } => {
                write!(f, "quote expired at {quote_expiry}, now {now}")
            }
            Denial::DeadlineTooFar {
                field,
                proposed,
                latest,
            } => {
                write!(f, "{field} {proposed} is later than {latest}")
            }
            Denial::NotaryRequired => write!(f, "our policy requires a notary"),
            Denial::NotaryNotAllowed { spiffe_id } => {
                write!(f, "notary {spiffe_id} is not allowed")
            }
            Denial::RefundHeightPassed {
                leg,
                refund_height,
                tip,
            } => {
                write!(
                    f,
                    "{leg} refund height {refund_height} is not above the tip {tip}"
                )
            }
            Denial::OwnRefundTooLate { leg, blocks, max } => {
                write!(
                    f,
                    "our {leg} refund is {blocks} blocks away, more than {max}"
                )
            }
            Denial::Unsafe { rule, timeline } => write!(f, "{} fails\n{timeline}", rule.name()),
        }
    }
}

/// The set of hashlocks a gateway has ever seen (the store persists it in
/// its `hashlocks` tree; tests use a `BTreeSet` or `HashSet`). Contract: the
/// store adds `H` in the same transaction as the event that accepts or
/// proposes the terms, so two proposals with one `H` cannot both pass.
pub trait HashlockRegistry {
    /// Whether `hash_lock` was seen before.
    fn contains_hashlock(&self, hash_lock: &[u8; 32]) -> bool;
}

impl HashlockRegistry for BTreeSet<[u8; 32]> {
    fn contains_hashlock(&self, hash_lock: &[u8; 32]) -> bool {
        self.contains(hash_lock)
    }
}

impl HashlockRegistry for HashSet<[u8; 32]> {
    fn contains_hashlock(&self, hash_lock: &[u8; 32]) -> bool {
        self.contains(hash_lock)
    }
}

fn deny(d: Denial) -> TermsError {
    TermsError::Denied(Box::new(d))
}

impl Terms {
    /// Refuses terms whose `H` the registry has seen (DESIGN.md §3.1).
    ///
    /// # Errors
    /// [`TermsError::HashlockReused`].
    pub fn check_hashlock_fresh(&self, registry: &impl HashlockRegistry) -> Result<(), TermsError> {
        if registry.contains_hashlock(&self.hash_lock) {
            Err(TermsError::HashlockReused {
                hash_lock: self.hash_lock,
            })
        } else {
            Ok(())
        }
    }

    /// Checks terms proposed to (or by) us, playing `role`, exactly against
    /// our `policy`, in this order: structure ([`Terms::validate`]); our
    /// identity and the caller's; the counterparty allowed; our keys; both
    /// chains known; amounts within limits; our exposure; confirmations;
    /// quote expiry (with the skew tolerance) and how far ahead the UTC
    /// deadlines lie; the notary; refund heights above the current tips; our
    /// own refund no later than our policy allows; and C1–C3 for the terms'
    /// refund delays from the current tips.
    ///
    /// # Errors
    /// The first failing check: [`TermsError::BadIdentity`] /
    /// [`TermsError::BadField`] for structure, else [`TermsError::Denied`].
    pub fn check_against(
        &self,
        policy: &Policy,
        role: Role,
        ctx: &CheckContext<'_>,
    ) -> Result<(), TermsError> {
        self.validate()?;
        let us = self.party(role);
        let them = self.party(role.other());
        if us.spiffe_id != ctx.own_spiffe_id {
            return Err(deny(Denial::NotUs {
                found: us.spiffe_id.clone(),
            }));
        }
        if them.spiffe_id != ctx.peer_spiffe_id {
            return Err(deny(Denial::NotTheCaller {
                in_terms: them.spiffe_id.clone(),
            }));
        }
        if !policy.allows_counterparty(&them.spiffe_id) {
            return Err(deny(Denial::CounterpartyNotAllowed {
                spiffe_id: them.spiffe_id.clone(),
            }));
        }
        let prefix = match role {
            Role::Buyer => [
                "buyer.saga_key",
                "buyer.payment_escrow_key",
                "buyer.delivery_escrow_key",
            ],
            Role::Seller => [
                "seller.saga_key",
                "seller.payment_escrow_key",
                "seller.delivery_escrow_key",
            ],
        };
        for (field, in_terms, ours) in [
            (prefix[0], &us.saga_key, ctx.own_saga_key),
            (
                prefix[1],
                &us.payment_escrow_key,
                ctx.own_payment_escrow_key,
            ),
            (
                prefix[2],
                &us.delivery_escrow_key,
                ctx.own_delivery_escrow_key,
            ),
        ] {
            if in_terms != ours {
                return Err(deny(Denial::NotOurKey { field }));
            }
        }

        let mut chains = Vec::with_capacity(2);
        for leg in [Leg::Payment, Leg::Delivery] {
            let l = self.leg(leg);
            let chain = policy.chain(&l.chain_id).ok_or_else(|| {
                deny(Denial::UnknownChain {
                    leg,
                    chain_id: l.chain_id.clone(),
                })
            })?;
            if l.amount < chain.min_amount || l.amount > chain.max_amount {
                return Err(deny(Denial::AmountOutOfLimits {
                    leg,
                    amount: l.amount,
                    min: chain.min_amount,
                    max: chain.max_amount,
                }));
            }
            chains.push((leg, chain));
        }
        let own_leg = role.funds();
        for &(leg, chain) in &chains {
            if leg == own_leg {
                let would_be = u128::from(ctx.exposure.0) + u128::from(self.leg(leg).amount.0);
                if would_be > u128::from(chain.exposure_limit.0) {
                    return Err(deny(Denial::ExposureExceeded {
                        would_be,
                        limit: chain.exposure_limit,
                    }));
                }
            }
            let proposed = self.leg(leg).confirmations;
            if proposed < chain.confirmations {
                return Err(deny(Denial::TooFewConfirmations {
                    leg,
                    proposed,
                    required: chain.confirmations,
                }));
            }
        }

        let skew = policy.times.clock_skew_tolerance.as_secs();
        if ctx.now.0 > self.quote_expiry.0.saturating_add(skew) {
            return Err(deny(Denial::QuoteExpired {
                quote_expiry: self.quote_expiry,
                now: ctx.now,
            }));
        }
        for (field, proposed, allowed) in [
            ("quote_expiry", self.quote_expiry, policy.times.quote_expiry),
            (
                "reservation_deadline",
                self.reservation_deadline,
                policy.times.reservation_deadline,
            ),
        ] {
            let latest = UnixTime(
                ctx.now
                    .0
                    .saturating_add(allowed.as_secs())
                    .saturating_add(skew),
            );
            if proposed > latest {
                return Err(deny(Denial::DeadlineTooFar {
                    field,
                    proposed,
                    latest,
                }));
            }
        }

        match &self.notary {
            None if policy.notary.required => return Err(deny(Denial::NotaryRequired)),
            Some(n) if !policy.notary.allowed.contains(n) => {
                return Err(deny(Denial::NotaryNotAllowed {
                    spiffe_id: n.clone(),
                }));
            }
            _ => {}
        }

        let delays = |leg: Leg, tip: Height| -> Result<u32, TermsError> {
            let t = self.leg(leg).refund_height;
            if t <= tip {
                return Err(deny(Denial::RefundHeightPassed {
                    leg,
                    refund_height: t,
                    tip,
                }));
            }
            Ok(t.0 - tip.0)
        };
        let n_p = delays(Leg::Payment, ctx.payment_tip)?;
        let n_d = delays(Leg::Delivery, ctx.delivery_tip)?;
        for &(leg, chain) in &chains {
            if leg == own_leg {
                let (blocks, base) = match leg {
                    Leg::Payment => (n_p, chain.payment_refund_blocks),
                    Leg::Delivery => (n_d, chain.delivery_refund_blocks),
                };
                let max = base.saturating_add(chain.view_lag_blocks);
                if blocks > max {
                    return Err(deny(Denial::OwnRefundTooLate { leg, blocks, max }));
                }
            }
        }

        let timeline = policy
            .timeline_for(&self.payment.chain_id, &self.delivery.chain_id, n_p, n_d)
            .ok_or_else(|| {
                deny(Denial::UnknownChain {
                    leg: Leg::Payment,
                    chain_id: self.payment.chain_id.clone(),
                })
            })?;
        if let Some(&rule) = timeline.violations().first() {
            return Err(deny(Denial::Unsafe {
                rule,
                timeline: Box::new(timeline),
            }));
        }
        Ok(())
    }
}
