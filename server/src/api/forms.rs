//! `GET /v2/Forms/{FormType}` (FetchForm): JSON Schema documents describing the push forms.
//! Twilio's example bodies are empty (docs/protocol/rest-api.md#forms); these describe what this
//! server actually accepts, so they are true for it.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::auth::AccountAuth;
use super::{Missing, State};
use crate::domain::rules::{
    APP_ID_MAX, DETAILS_FIELDS_MAX, DETAILS_MESSAGE_MAX, FACTOR_FRIENDLY_NAME_MAX, FIELD_LABEL_MAX, FIELD_VALUE_MAX,
    JSON_TEXT_MAX,
};
use crate::domain::status::{FactorType, NotificationPlatform};
use crate::error::ApiResult;

#[derive(Deserialize)]
pub struct FormPath {
    #[serde(rename = "FormType")]
    form_type: String,
}

#[derive(Serialize)]
struct FormBody {
    form_type: &'static str,
    forms: Value,
    form_meta: Value,
    url: String,
}

fn push_forms() -> Value {
    json!({
        "create_factor": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "Create a push Factor",
            "type": "object",
            "required": ["FriendlyName", "FactorType", "Binding.Alg", "Binding.PublicKey", "Config.SdkVersion",
                         "Config.AppId", "Config.NotificationPlatform"],
            "properties": {
                "FriendlyName": {"type": "string", "maxLength": FACTOR_FRIENDLY_NAME_MAX},
                "FactorType": {"const": FactorType::Push},
                "Binding.Alg": {"const": "ES256"},
                "Binding.PublicKey": {"type": "string", "description": "base64 P-256 SubjectPublicKeyInfo DER"},
                "Config.SdkVersion": {"type": "string"},
                "Config.AppId": {"type": "string", "maxLength": APP_ID_MAX},
                "Config.NotificationPlatform": {"enum": NotificationPlatform::NAMES},
                "Config.NotificationToken": {"type": "string", "minLength": 32, "maxLength": 255},
                "Metadata": {"type": "string", "maxLength": JSON_TEXT_MAX,
                             "description": "stringified JSON object of string values"}
            }
        },
        "verify_factor": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "Verify a push Factor",
            "type": "object",
            "required": ["AuthPayload"],
            "properties": {
                "AuthPayload": {"type": "string",
                                "description": "base64 DER ECDSA P-256 SHA-256 signature over the Factor SID"}
            }
        },
        "create_challenge": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "Create a push Challenge",
            "type": "object",
            "required": ["FactorSid", "Details.Message"],
            "properties": {
                "FactorSid": {"type": "string", "pattern": "^YF[0-9a-fA-F]{32}$"},
                "ExpirationDate": {"type": "string", "format": "date-time"},
                "Details.Message": {"type": "string", "maxLength": DETAILS_MESSAGE_MAX},
                "Details.Fields": {"type": "array", "maxItems": DETAILS_FIELDS_MAX, "items": {
                    "type": "object", "required": ["label", "value"], "additionalProperties": false,
                    "properties": {"label": {"type": "string", "maxLength": FIELD_LABEL_MAX},
                                   "value": {"type": "string", "maxLength": FIELD_VALUE_MAX}}}},
                "HiddenDetails": {"type": "string", "maxLength": JSON_TEXT_MAX,
                                  "description": "stringified JSON object of string values"}
            }
        }
    })
}

pub async fn fetch_form(_auth: AccountAuth, state: State, path: web::Path<FormPath>) -> ApiResult<HttpResponse> {
    if path.form_type != "form-push" {
        return Err(Missing::Form(&path.form_type).into());
    }
    Ok(HttpResponse::Ok().json(FormBody {
        form_type: "form-push",
        forms: push_forms(),
        form_meta: json!({"binding_algorithms": ["ES256"], "notification_platforms": NotificationPlatform::NAMES}),
        url: state.urls.absolute("/v2/Forms/form-push"),
    }))
}
