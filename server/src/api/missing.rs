//! The 404 of every resource, rendered in one place, and the one parse of a path's (or a
//! parameter's) SIDs.
//!
//! A path whose SID is malformed (wrong prefix, wrong length) names nothing, so it answers
//! exactly what an unknown well-formed SID answers: 404/20404 naming the resource's path.

use std::str::FromStr;

use crate::domain::sid::WrongSid;
use crate::error::ApiError;

/// A resource a path names, by the segments of its path as the client sent them.
#[derive(Debug, Clone, Copy)]
pub enum Missing<'a> {
    Service(&'a str),
    Entity {
        service: &'a str,
        identity: &'a str,
    },
    Factor {
        service: &'a str,
        identity: &'a str,
        sid: &'a str,
    },
    Challenge {
        service: &'a str,
        identity: &'a str,
        sid: &'a str,
    },
    /// A Challenge named by its SID alone (`/_emulator/Challenges/{ChallengeSid}`).
    EmulatorChallenge(&'a str),
    Webhook {
        service: &'a str,
        sid: &'a str,
    },
    AccessToken {
        service: &'a str,
        sid: &'a str,
    },
    Credential(&'a str),
    Form(&'a str),
    /// A virtual device, by its Factor SID.
    Device(&'a str),
    /// A Challenge as a virtual device names it.
    DeviceChallenge {
        factor: &'a str,
        sid: &'a str,
    },
}

impl Missing<'_> {
    /// The resource's path, as the 404 message names it.
    pub fn path(self) -> String {
        match self {
            Missing::Service(sid) => format!("/v2/Services/{sid}"),
            Missing::Entity { service, identity } => format!("/v2/Services/{service}/Entities/{identity}"),
            Missing::Factor { service, identity, sid } => {
                format!("/v2/Services/{service}/Entities/{identity}/Factors/{sid}")
            }
            Missing::Challenge { service, identity, sid } => {
                format!("/v2/Services/{service}/Entities/{identity}/Challenges/{sid}")
            }
            Missing::EmulatorChallenge(sid) => format!("/_emulator/Challenges/{sid}"),
            Missing::Webhook { service, sid } => format!("/v2/Services/{service}/Webhooks/{sid}"),
            Missing::AccessToken { service, sid } => format!("/v2/Services/{service}/AccessTokens/{sid}"),
            Missing::Credential(sid) => format!("/v1/Credentials/{sid}"),
            Missing::Form(form_type) => format!("/v2/Forms/{form_type}"),
            Missing::Device(sid) => format!("/_emulator/Devices/{sid}"),
            Missing::DeviceChallenge { factor, sid } => format!("/_emulator/Devices/{factor}/Challenges/{sid}"),
        }
    }
}

impl From<Missing<'_>> for ApiError {
    fn from(missing: Missing<'_>) -> ApiError {
        ApiError::NotFound(missing.path())
    }
}

/// A path segment parsed as its typed SID, or the 404 of the resource the path names.
pub fn path_sid<S: FromStr>(raw: &str, missing: Missing<'_>) -> Result<S, ApiError> {
    raw.parse().map_err(|_| missing.into())
}

/// A body or query parameter parsed as its typed SID, or 400/60200 naming it.
pub fn param_sid<S: FromStr<Err = WrongSid>>(name: &'static str, raw: &str) -> Result<S, ApiError> {
    raw.parse().map_err(|e: WrongSid| ApiError::invalid(name, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::sid::{FactorSid, ServiceSid};

    #[test]
    fn a_malformed_path_sid_answers_the_resource_s_404() {
        let missing = Missing::Factor { service: "VA1", identity: "user-0001", sid: "XX2" };
        match path_sid::<FactorSid>("XX2", missing) {
            Err(error) => assert_eq!(
                error.to_string(),
                "The requested resource /v2/Services/VA1/Entities/user-0001/Factors/XX2 was not found"
            ),
            Ok(sid) => panic!("{sid} parsed as a Factor SID"),
        }
        let good = ServiceSid::generate();
        let parsed: Result<ServiceSid, _> = path_sid(&good, Missing::Service(&good));
        assert!(parsed.is_ok_and(|sid| sid == good));
    }
}
