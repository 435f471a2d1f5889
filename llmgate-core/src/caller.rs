//! Who is asking: the identity, tier and billing mode of one request.

use std::sync::Arc;

use rust_decimal::Decimal;

use crate::catalog::Privacy;
use crate::gateway::AttemptLog;
use crate::key_limits::KeyLimits;
use crate::power::PowerLevel;

/// What a subscription tier grants.
#[derive(Debug, Clone, PartialEq)]
pub struct Tier {
    /// The tier's name, as configured and shown to users (e.g. `starter`).
    pub name: String,
    /// 0.4 means +40 % on every charge.
    pub markup: Decimal,
    /// Whether users of this tier may bring their own provider keys.
    pub byok: bool,
    /// Credits granted once per calendar month.
    pub monthly_credits: Option<Decimal>,
    /// The power level of requests that name none.
    pub default_power_level: PowerLevel,
    /// Requests per minute per user; `None` is unlimited.
    pub rpm: Option<u32>,
    /// Only `privacy: high` (local) models may serve this tier.
    pub require_private: bool,
}

impl Tier {
    /// A tier with no markup, no BYOK and the balanced default.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            markup: Decimal::ZERO,
            byok: false,
            monthly_credits: None,
            default_power_level: PowerLevel::Balanced,
            rpm: None,
            require_private: false,
        }
    }
}

/// Whether a request holds and charges credits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Billing {
    /// A user's request: holds and charges credits (unless BYOK or a free model).
    Charged,
    /// The master key or an embedder's own call: recorded in usage, never charged.
    Uncharged,
}

/// The caller of one request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The account charged and recorded in usage.
    pub user_id: Arc<str>,
    /// The caller's tier: markup, BYOK, default power level, rate limit.
    pub tier: Arc<Tier>,
    /// Whether the request holds and charges credits.
    pub billing: Billing,
    /// Correlates logs, the ledger and the response; generated when absent.
    pub request_id: Option<Arc<str>>,
    /// The least privacy a deployment must offer for this request (the server maps the
    /// `x-llmgate-privacy` header here). `High` keeps the request on local models, as a
    /// tier's `require_private` does for all of its users' requests.
    pub privacy: Privacy,
    /// The restrictions of the API key the request came with (models, budget, rpm/tpm);
    /// `None` for the master key and embedders' own calls.
    pub key: Option<Arc<KeyLimits>>,
    /// Where a failed request leaves the upstream calls it made (a request log reads it).
    pub attempt_log: Option<AttemptLog>,
}

impl Caller {
    /// A charged user of the given tier.
    pub fn user(user_id: impl Into<Arc<str>>, tier: Arc<Tier>) -> Self {
        Self {
            user_id: user_id.into(),
            tier,
            billing: Billing::Charged,
            request_id: None,
            privacy: Privacy::Low,
            key: None,
            attempt_log: None,
        }
    }

    /// The operator: never charged, recorded in usage as `admin`.
    pub fn admin() -> Self {
        Self {
            user_id: Arc::from("admin"),
            tier: Arc::new(Tier::new("admin")),
            billing: Billing::Uncharged,
            request_id: None,
            privacy: Privacy::Low,
            key: None,
            attempt_log: None,
        }
    }

    /// Use this request id instead of a generated one (e.g. the client's `x-request-id`).
    pub fn with_request_id(mut self, request_id: impl Into<Arc<str>>) -> Self {
        self.request_id = Some(request_id.into());
        self
    }

    /// The request came with this key: its restrictions apply.
    pub fn with_key(mut self, key: Arc<KeyLimits>) -> Self {
        self.key = Some(key);
        self
    }

    /// Leave the upstream calls of a failed request in `log`.
    pub fn with_attempt_log(mut self, log: AttemptLog) -> Self {
        self.attempt_log = Some(log);
        self
    }

    /// Require at least this privacy for this request.
    pub fn with_privacy(mut self, privacy: Privacy) -> Self {
        self.privacy = privacy;
        self
    }

    /// The privacy this request needs: the caller's ask, raised to `High` by a private tier.
    pub fn required_privacy(&self) -> Privacy {
        if self.tier.require_private {
            Privacy::High
        } else {
            self.privacy
        }
    }
}
