//! The fields of a CloudTrail record that the classifier reads, deserialised
//! straight from the record's bytes (borrowing where the JSON has no escapes).
//!
//! Every field is *lenient* at parse time: a field of an unexpected JSON type
//! is remembered as [`Field::Wrong`] instead of failing the parse, because
//! most records are not governed calls and the type of, say, `errorCode` on
//! an S3 record is none of our business. [`Record::check_types`] then fails
//! only on the fields the classifier is about to read, naming the field.

use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::fmt;

/// Placeholder CloudTrail writes instead of a sensitive value.
pub const HIDDEN: &str = "HIDDEN_DUE_TO_SECURITY_REASONS";

/// A JSON value where a string (or null) is expected.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Field<'a> {
    #[default]
    Missing,
    Null,
    Str(Cow<'a, str>),
    /// Present with another JSON type; the str names that type.
    Wrong(&'static str),
}

impl<'a> Field<'a> {
    /// The string, when the field is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Field::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The string, unless absent, null, of another type or
    /// `HIDDEN_DUE_TO_SECURITY_REASONS`.
    pub fn visible(&self) -> Option<&str> {
        self.as_str().filter(|s| *s != HIDDEN)
    }

    fn wrong_type(&self) -> Option<&'static str> {
        match self {
            Field::Wrong(k) => Some(k),
            _ => None,
        }
    }
}

fn drain_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

fn drain_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

impl<'de: 'a, 'a> Deserialize<'de> for Field<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Field<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Field::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Field::Str(Cow::Owned(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Field::Str(Cow::Owned(v)))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Field::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Field::Null)
            }
            fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
                Field::deserialize(d)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Field::Wrong("a boolean"))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Field::Wrong("a number"))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Field::Wrong("a number"))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Field::Wrong("a number"))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                drain_seq(seq)?;
                Ok(Field::Wrong("an array"))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                drain_map(map)?;
                Ok(Field::Wrong("an object"))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// A JSON value where an object (or null) is expected.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Obj<T> {
    #[default]
    Missing,
    Null,
    Some(T),
    Wrong(&'static str),
}

impl<T> Obj<T> {
    pub fn get(&self) -> Option<&T> {
        match self {
            Obj::Some(t) => Some(t),
            _ => None,
        }
    }
    fn wrong_type(&self) -> Option<&'static str> {
        match self {
            Obj::Wrong(k) => Some(k),
            _ => None,
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Obj<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map)).map(Obj::Some)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Obj::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Obj::Null)
            }
            fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
                Obj::deserialize(d)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Obj::Wrong("a string"))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Obj::Wrong("a boolean"))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Obj::Wrong("a number"))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Obj::Wrong("a number"))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Obj::Wrong("a number"))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                drain_seq(seq)?;
                Ok(Obj::Wrong("an array"))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// A JSON value where a boolean is expected (`readOnly`,
/// `managementEvent`). Exports that write `"true"`/`"false"` as strings are
/// read as booleans; anything else reads as absent (these fields only steer
/// which rules look at a record, never decide a finding on their own).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Flag {
    #[default]
    Missing,
    True,
    False,
}

impl Flag {
    pub fn is_true(self) -> bool {
        self == Flag::True
    }
    pub fn is_false(self) -> bool {
        self == Flag::False
    }
}

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Flag;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Flag, E> {
                Ok(if v { Flag::True } else { Flag::False })
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Flag, E> {
                Ok(match v {
                    "true" => Flag::True,
                    "false" => Flag::False,
                    _ => Flag::Missing,
                })
            }
            fn visit_unit<E: de::Error>(self) -> Result<Flag, E> {
                Ok(Flag::Missing)
            }
            fn visit_none<E: de::Error>(self) -> Result<Flag, E> {
                Ok(Flag::Missing)
            }
            fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Flag, D2::Error> {
                Flag::deserialize(d)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Flag, E> {
                Ok(Flag::Missing)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Flag, E> {
                Ok(Flag::Missing)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Flag, E> {
                Ok(Flag::Missing)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Flag, A::Error> {
                drain_seq(seq)?;
                Ok(Flag::Missing)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Flag, A::Error> {
                drain_map(map)?;
                Ok(Flag::Missing)
            }
        }
        d.deserialize_any(V)
    }
}

/// A JSON value where an array of strings is expected (network connector
/// ARNs). Evidence only: non-string elements and other types are dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StrList(pub Vec<String>);

impl<'de> Deserialize<'de> for StrList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        Ok(StrList(match v {
            serde_json::Value::Array(items) => items
                .into_iter()
                .filter_map(|i| match i {
                    serde_json::Value::String(s) => Some(s),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }))
    }
}

/// `requestParameters.runHookPayload`: a JSON document in a string, as the API
/// defines it; tolerated as an inline object too.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Payload<'a> {
    #[default]
    Missing,
    Null,
    Str(Cow<'a, str>),
    /// Any other JSON value, kept whole (rare, small).
    Inline(serde_json::Value),
}

impl<'de: 'a, 'a> Deserialize<'de> for Payload<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        Ok(match v {
            serde_json::Value::Null => Payload::Null,
            serde_json::Value::String(s) => Payload::Str(Cow::Owned(s)),
            other => Payload::Inline(other),
        })
    }
}

/// What a visible payload says about the Contro1 request id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadId {
    /// Absent, null or `HIDDEN_DUE_TO_SECURITY_REASONS`.
    NotVisible,
    /// A JSON object with a non-empty string `contro1_request_id`.
    Id(String),
    /// Visible, but not such an object.
    Invalid,
}

impl Payload<'_> {
    pub fn contro1_request_id(&self) -> PayloadId {
        let from_value = |v: &serde_json::Value| match v
            .as_object()
            .and_then(|o| o.get("contro1_request_id"))
            .and_then(|id| id.as_str())
        {
            Some(id) if !id.is_empty() => PayloadId::Id(id.to_string()),
            _ => PayloadId::Invalid,
        };
        match self {
            Payload::Missing | Payload::Null => PayloadId::NotVisible,
            Payload::Str(s) if s == HIDDEN => PayloadId::NotVisible,
            Payload::Str(s) => match serde_json::from_str::<serde_json::Value>(s) {
                Ok(v) => from_value(&v),
                Err(_) => PayloadId::Invalid,
            },
            Payload::Inline(v) => from_value(v),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct SessionIssuer<'a> {
    #[serde(borrow, default)]
    pub arn: Field<'a>,
}

#[derive(Debug, Default, Deserialize)]
pub struct SessionContext<'a> {
    #[serde(borrow, default, rename = "sessionIssuer")]
    pub session_issuer: Obj<SessionIssuer<'a>>,
}

/// `userIdentity.onBehalfOf`: the Identity Center user behind a session.
#[derive(Debug, Default, Deserialize)]
pub struct OnBehalfOf<'a> {
    #[serde(borrow, default, rename = "userId")]
    pub user_id: Field<'a>,
    #[serde(borrow, default, rename = "identityStoreArn")]
    pub identity_store_arn: Field<'a>,
}

#[derive(Debug, Default, Deserialize)]
pub struct UserIdentity<'a> {
    #[serde(borrow, default, rename = "type")]
    pub identity_type: Field<'a>,
    #[serde(borrow, default)]
    pub arn: Field<'a>,
    #[serde(borrow, default, rename = "accountId")]
    pub account_id: Field<'a>,
    #[serde(borrow, default, rename = "sessionContext")]
    pub session_context: Obj<SessionContext<'a>>,
    // Evidence only (never decides a rule, so never checked for its type):
    #[serde(borrow, default, rename = "accessKeyId")]
    pub access_key_id: Field<'a>,
    #[serde(borrow, default, rename = "invokedBy")]
    pub invoked_by: Field<'a>,
    #[serde(borrow, default, rename = "onBehalfOf")]
    pub on_behalf_of: Obj<OnBehalfOf<'a>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RequestParameters<'a> {
    #[serde(borrow, default, rename = "runHookPayload")]
    pub run_hook_payload: Payload<'a>,
    #[serde(borrow, default, rename = "clientToken")]
    pub client_token: Field<'a>,
    #[serde(borrow, default, rename = "microvmIdentifier")]
    pub microvm_identifier: Field<'a>,
    #[serde(borrow, default, rename = "imageIdentifier")]
    pub image_identifier: Field<'a>,
    #[serde(borrow, default, rename = "microvmImageArn")]
    pub microvm_image_arn: Field<'a>,
    /// Trail name, for CloudTrail's own StopLogging/DeleteTrail/...
    #[serde(borrow, default)]
    pub name: Field<'a>,
    // Evidence only:
    #[serde(borrow, default, rename = "imageVersion")]
    pub image_version: Field<'a>,
    #[serde(borrow, default, rename = "executionRoleArn")]
    pub execution_role_arn: Field<'a>,
    #[serde(default, rename = "ingressNetworkConnectors")]
    pub ingress_network_connectors: StrList,
    #[serde(default, rename = "egressNetworkConnectors")]
    pub egress_network_connectors: StrList,
}

#[derive(Debug, Default, Deserialize)]
pub struct ResponseElements<'a> {
    #[serde(borrow, default, rename = "microvmId")]
    pub microvm_id: Field<'a>,
    #[serde(borrow, default, rename = "imageArn")]
    pub image_arn: Field<'a>,
    #[serde(borrow, default, rename = "microvmImageArn")]
    pub microvm_image_arn: Field<'a>,
    // Evidence only:
    #[serde(borrow, default)]
    pub state: Field<'a>,
    #[serde(borrow, default, rename = "microvmState")]
    pub microvm_state: Field<'a>,
    #[serde(borrow, default, rename = "imageVersion")]
    pub image_version: Field<'a>,
    #[serde(borrow, default, rename = "executionRoleArn")]
    pub execution_role_arn: Field<'a>,
}

/// The part of a CloudTrail record the classifier reads.
#[derive(Debug, Default, Deserialize)]
pub struct Record<'a> {
    #[serde(borrow, default, rename = "eventID")]
    pub event_id: Field<'a>,
    #[serde(borrow, default, rename = "eventName")]
    pub event_name: Field<'a>,
    #[serde(borrow, default, rename = "eventSource")]
    pub event_source: Field<'a>,
    #[serde(borrow, default, rename = "eventTime")]
    pub event_time: Field<'a>,
    #[serde(borrow, default, rename = "eventType")]
    pub event_type: Field<'a>,
    #[serde(borrow, default, rename = "awsRegion")]
    pub aws_region: Field<'a>,
    #[serde(borrow, default, rename = "errorCode")]
    pub error_code: Field<'a>,
    #[serde(borrow, default, rename = "sourceIPAddress")]
    pub source_ip_address: Field<'a>,
    #[serde(borrow, default, rename = "userAgent")]
    pub user_agent: Field<'a>,
    #[serde(borrow, default, rename = "requestID")]
    pub request_id: Field<'a>,
    #[serde(borrow, default, rename = "recipientAccountId")]
    pub recipient_account_id: Field<'a>,
    #[serde(borrow, default, rename = "userIdentity")]
    pub user_identity: Obj<UserIdentity<'a>>,
    #[serde(borrow, default, rename = "requestParameters")]
    pub request_parameters: Obj<RequestParameters<'a>>,
    #[serde(borrow, default, rename = "responseElements")]
    pub response_elements: Obj<ResponseElements<'a>>,
    /// Steer which rules look at a record (see [`Flag`]).
    #[serde(default, rename = "readOnly")]
    pub read_only: Flag,
    #[serde(default, rename = "managementEvent")]
    pub management_event: Flag,
    #[serde(borrow, default, rename = "eventCategory")]
    pub event_category: Field<'a>,
}

/// A field the classifier reads has the wrong JSON type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}`: expected {expected}, found {found}")]
pub struct FieldTypeError {
    pub field: &'static str,
    pub expected: &'static str,
    pub found: &'static str,
}

/// Value of `eventType` that marks a CloudTrail Insight record.
pub const INSIGHT_EVENT_TYPE: &str = "AwsCloudTrailInsight";

impl<'a> Record<'a> {
    /// Parse one record from its JSON bytes.
    pub fn from_slice(bytes: &'a [u8]) -> Result<Record<'a>, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// Read the fields from an already-parsed JSON value (an EventBridge
    /// `detail`, say).
    pub fn from_value(v: &'a serde_json::Value) -> Result<Record<'a>, serde_json::Error> {
        Record::deserialize(v)
    }

    /// True for a data event (`eventCategory: Data` or
    /// `managementEvent: false`); records that say neither are taken as
    /// management events.
    pub fn is_data_event(&self) -> bool {
        self.event_category.as_str() == Some("Data") || self.management_event.is_false()
    }

    /// True for a CloudTrail Insight record (skipped, counted).
    pub fn is_insight(&self) -> bool {
        self.event_type.as_str() == Some(INSIGHT_EVENT_TYPE)
    }

    /// Fail on a field of the wrong type among those the classifier reads:
    /// `eventSource`, `eventName` and `eventType` always, the others only when
    /// `deep` (the record is a governed call or a trail change).
    pub fn check_types(&self, deep: bool) -> Result<(), FieldTypeError> {
        const STR: &str = "a string or null";
        const OBJ: &str = "an object or null";
        let s = |field, f: &Field| match f.wrong_type() {
            Some(found) => Err(FieldTypeError {
                field,
                expected: STR,
                found,
            }),
            None => Ok(()),
        };
        let o = |field, found: Option<&'static str>| match found {
            Some(found) => Err(FieldTypeError {
                field,
                expected: OBJ,
                found,
            }),
            None => Ok(()),
        };
        s("eventSource", &self.event_source)?;
        s("eventName", &self.event_name)?;
        s("eventType", &self.event_type)?;
        if !deep {
            return Ok(());
        }
        s("eventID", &self.event_id)?;
        s("eventTime", &self.event_time)?;
        s("awsRegion", &self.aws_region)?;
        s("errorCode", &self.error_code)?;
        s("sourceIPAddress", &self.source_ip_address)?;
        s("userAgent", &self.user_agent)?;
        s("requestID", &self.request_id)?;
        s("recipientAccountId", &self.recipient_account_id)?;
        o("userIdentity", self.user_identity.wrong_type())?;
        if let Some(u) = self.user_identity.get() {
            s("userIdentity.type", &u.identity_type)?;
            s("userIdentity.arn", &u.arn)?;
            s("userIdentity.accountId", &u.account_id)?;
            o(
                "userIdentity.sessionContext",
                u.session_context.wrong_type(),
            )?;
            if let Some(c) = u.session_context.get() {
                o(
                    "userIdentity.sessionContext.sessionIssuer",
                    c.session_issuer.wrong_type(),
                )?;
                if let Some(i) = c.session_issuer.get() {
                    s("userIdentity.sessionContext.sessionIssuer.arn", &i.arn)?;
                }
            }
        }
        o("requestParameters", self.request_parameters.wrong_type())?;
        if let Some(p) = self.request_parameters.get() {
            s("requestParameters.clientToken", &p.client_token)?;
            s("requestParameters.microvmIdentifier", &p.microvm_identifier)?;
            s("requestParameters.imageIdentifier", &p.image_identifier)?;
            s("requestParameters.microvmImageArn", &p.microvm_image_arn)?;
            s("requestParameters.name", &p.name)?;
        }
        o("responseElements", self.response_elements.wrong_type())?;
        if let Some(r) = self.response_elements.get() {
            s("responseElements.microvmId", &r.microvm_id)?;
            s("responseElements.imageArn", &r.image_arn)?;
            s("responseElements.microvmImageArn", &r.microvm_image_arn)?;
        }
        Ok(())
    }
}
