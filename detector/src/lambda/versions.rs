//! Log objects read by the version their notification names (threat-model
//! row T17: someone who can put objects in the trail bucket replaces a log
//! file before the detector reads it).
//!
//! CloudTrail writes each log file key exactly once (the name ends in a
//! random string), so in a versioned bucket a key whose current version is
//! not the one a notification named has been written over by something else.
//! The handler reads the named version (what CloudTrail wrote) and then asks
//! S3 for the key's current version; this module judges the answer and
//! builds the findings: `trail-object-overwritten` (another version is the
//! current one) and `trail-object-deleted` (a delete marker is, or the
//! version named is gone for good, so it could not be read at all).
//!
//! Where the version comes from: S3 event notifications carry
//! `s3.object.versionId` ("object version if bucket is versioning-enabled,
//! otherwise null": Amazon S3 User Guide, "Event message structure",
//! <https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html>);
//! EventBridge "Object Created" events carry `detail.object.version-id`
//! (Amazon S3 User Guide, "EventBridge event message structure",
//! <https://docs.aws.amazon.com/AmazonS3/latest/userguide/ev-events.html>).
//! CloudTrail's own SNS message names keys only.
//!
//! Nothing is lost: an object that cannot be read still fails its message
//! (retried, then kept in the dead-letter queue), with the finding raised
//! first when S3 says the version is gone.

use super::alert::{Alert, DedupeKey, utc_timestamp};
use super::ports::{LatestVersion, ObjectStore, PortError};
use detector_core::notification::ObjectRef;
use detector_core::{Finding, Rule, Severity};

/// What the key holds now, compared with the version a notification named.
#[derive(Debug, Clone, PartialEq)]
pub enum VersionCheck {
    /// The notification named no version (CloudTrail's own SNS message, or
    /// an unversioned bucket): the current object was read, nothing to judge.
    NotNamed,
    /// The named version is still the key's current one.
    Latest,
    /// Another object is the key's current version: the finding.
    Overwritten(Box<Alert>),
    /// The key has no current object (a delete marker, or lifecycle
    /// expiry): the named version was read; the finding.
    Deleted(Box<Alert>),
}

/// Compare the version `o` names with the key's current version.
pub async fn check(
    objects: &dyn ObjectStore,
    o: &ObjectRef,
    now_epoch: i64,
) -> Result<VersionCheck, PortError> {
    let Some(named) = o.version_id.as_deref() else {
        return Ok(VersionCheck::NotNamed);
    };
    Ok(match objects.latest(&o.bucket, &o.key).await? {
        LatestVersion::Id(current) if current == named => VersionCheck::Latest,
        LatestVersion::Absent => VersionCheck::Deleted(Box::new(deleted(
            o,
            named,
            "the key has no current object now (a delete marker or an expiry); \
             the version named was read",
            "latest",
            now_epoch,
        ))),
        LatestVersion::Id(current) => VersionCheck::Overwritten(Box::new(overwritten(
            o,
            named,
            &format!("its current version is {current}"),
            now_epoch,
        ))),
        // A versioned object always answers with its version id: an object
        // without one is not the version named.
        LatestVersion::Unversioned => VersionCheck::Overwritten(Box::new(overwritten(
            o,
            named,
            "the object there now has no version id",
            now_epoch,
        ))),
    })
}

/// After `GetObject` of the version `o` names failed: the
/// `trail-object-deleted` finding when S3 says that version is not there
/// (deleted for good, or a delete marker), `None` when no version was named
/// or the version exists (the failure was something else: access, network).
/// The caller fails the message either way.
pub async fn gone(
    objects: &dyn ObjectStore,
    o: &ObjectRef,
    now_epoch: i64,
) -> Result<Option<Alert>, PortError> {
    let Some(named) = o.version_id.as_deref() else {
        return Ok(None);
    };
    if objects.has_version(&o.bucket, &o.key, named).await? {
        return Ok(None);
    }
    Ok(Some(deleted(
        o,
        named,
        "that version is not in the bucket any more (deleted for good), so its records \
         could not be read",
        "version",
        now_epoch,
    )))
}

fn deleted(o: &ObjectRef, named: &str, what: &str, which: &str, now_epoch: i64) -> Alert {
    let mut f = Finding::new(
        Rule::TrailObjectDeleted,
        Severity::High,
        format!("CloudTrail log file deleted in s3://{}", o.bucket),
        o.to_string(),
    );
    f.event_time = Some(utc_timestamp(now_epoch));
    f.resource = Some(o.to_string());
    f.reason = Some(format!(
        "the notification named version {named}; {what}. CloudTrail never deletes its log files"
    ));
    let finding = f.with_incident_key();
    Alert {
        dedupe: DedupeKey::EventId(format!("s3:{o}?versionId={named}#deleted-{which}")),
        finding,
    }
}

/// The finding: one alert per object version named, whichever path or how
/// many times the notification is delivered.
fn overwritten(o: &ObjectRef, named: &str, now: &str, now_epoch: i64) -> Alert {
    let mut f = Finding::new(
        Rule::TrailObjectOverwritten,
        Severity::High,
        format!("CloudTrail log file overwritten in s3://{}", o.bucket),
        o.to_string(),
    );
    f.event_time = Some(utc_timestamp(now_epoch));
    f.resource = Some(o.to_string());
    f.reason = Some(format!(
        "the notification named version {named}, {now}; CloudTrail writes each log file once, \
         so something else wrote over it (version {named} was read)"
    ));
    let finding = f.with_incident_key();
    Alert {
        dedupe: DedupeKey::EventId(format!("s3:{o}?versionId={named}")),
        finding,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lambda::fakes::FakeObjects;

    const KEY: &str = "AWSLogs/111122223333/CloudTrail/us-east-1/2025/10/02/111122223333_CloudTrail_us-east-1_20251002T1405Z_Xn3k.json.gz";

    fn named(version: Option<&str>) -> ObjectRef {
        ObjectRef {
            bucket: "trail-bucket".into(),
            key: KEY.into(),
            size: None,
            version_id: version.map(str::to_string),
        }
    }

    #[tokio::test]
    async fn a_named_version_that_is_still_current_is_not_a_finding() {
        let s3 = FakeObjects::default();
        let v1 = s3.put("trail-bucket", KEY, b"cloudtrail".to_vec());
        let got = check(&s3, &named(Some(&v1)), 0).await.unwrap();
        assert_eq!(got, VersionCheck::Latest);
    }

    #[tokio::test]
    async fn a_named_version_with_a_newer_one_above_it_is_an_overwrite_naming_both() {
        let s3 = FakeObjects::default();
        let v1 = s3.put("trail-bucket", KEY, b"cloudtrail".to_vec());
        let v2 = s3.put("trail-bucket", KEY, b"attacker".to_vec());
        let VersionCheck::Overwritten(a) =
            check(&s3, &named(Some(&v1)), 1_759_413_931).await.unwrap()
        else {
            panic!("expected an overwrite");
        };
        assert_eq!(a.finding.rule, Rule::TrailObjectOverwritten);
        assert_eq!(a.finding.event, shared_core::Event::GovernanceTampered);
        assert_eq!(
            a.finding.resource.as_deref(),
            Some(format!("s3://trail-bucket/{KEY}").as_str())
        );
        let reason = a.finding.reason.as_deref().unwrap();
        assert!(reason.contains(&v1) && reason.contains(&v2), "{reason}");
        assert_eq!(
            a.dedupe.as_key(),
            format!("event#s3:s3://trail-bucket/{KEY}?versionId={v1}")
        );
        // The version named is what the fake serves when asked for it.
        let mut body = String::new();
        tokio::io::AsyncReadExt::read_to_string(
            &mut s3.open("trail-bucket", KEY, Some(&v1)).await.unwrap(),
            &mut body,
        )
        .await
        .unwrap();
        assert_eq!(body, "cloudtrail");
    }

    #[tokio::test]
    async fn a_delete_marker_over_the_named_version_is_a_deletion_and_no_version_named_is_not_judged()
     {
        let s3 = FakeObjects::default();
        let v1 = s3.put("trail-bucket", KEY, b"cloudtrail".to_vec());
        s3.delete_marker("trail-bucket", KEY);
        let VersionCheck::Deleted(a) = check(&s3, &named(Some(&v1)), 0).await.unwrap() else {
            panic!("expected a deletion");
        };
        assert_eq!(a.finding.rule, Rule::TrailObjectDeleted);
        assert!(
            a.finding
                .reason
                .as_deref()
                .unwrap()
                .contains("no current object"),
            "{:?}",
            a.finding.reason
        );
        assert_eq!(
            check(&s3, &named(None), 0).await.unwrap(),
            VersionCheck::NotNamed
        );
        assert_eq!(s3.heads(), 1, "no HeadObject when no version is named");
    }

    #[tokio::test]
    async fn a_named_version_deleted_for_good_is_gone_and_one_still_there_is_not() {
        let s3 = FakeObjects::default();
        let v1 = s3.put("trail-bucket", KEY, b"cloudtrail".to_vec());
        let v2 = s3.put("trail-bucket", KEY, b"later".to_vec());
        assert_eq!(gone(&s3, &named(Some(&v1)), 0).await.unwrap(), None);
        assert_eq!(gone(&s3, &named(None), 0).await.unwrap(), None);
        s3.delete_version("trail-bucket", KEY, &v1);
        let a = gone(&s3, &named(Some(&v1)), 0)
            .await
            .unwrap()
            .expect("gone");
        assert_eq!(a.finding.rule, Rule::TrailObjectDeleted);
        assert_eq!(a.finding.event, shared_core::Event::GovernanceTampered);
        assert!(
            a.finding.reason.as_deref().unwrap().contains(&v1),
            "{:?}",
            a.finding.reason
        );
        // Not the same incident as a delete marker over the same version.
        assert_eq!(
            a.dedupe.as_key(),
            format!("event#s3:s3://trail-bucket/{KEY}?versionId={v1}#deleted-version")
        );
        // The later version is untouched.
        assert_eq!(gone(&s3, &named(Some(&v2)), 0).await.unwrap(), None);
        s3.fail_heads
            .store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(gone(&s3, &named(Some(&v1)), 0).await.is_err());
    }

    #[tokio::test]
    async fn a_current_object_without_a_version_id_is_not_the_version_named() {
        let s3 = FakeObjects::default();
        s3.put_unversioned("trail-bucket", KEY, b"x".to_vec());
        let got = check(&s3, &named(Some("v-forged")), 0).await.unwrap();
        assert!(matches!(got, VersionCheck::Overwritten(_)), "{got:?}");
    }

    #[tokio::test]
    async fn a_failed_head_is_an_error_not_a_verdict() {
        let s3 = FakeObjects::default();
        let v1 = s3.put("trail-bucket", KEY, b"cloudtrail".to_vec());
        s3.fail_heads
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let e = check(&s3, &named(Some(&v1)), 0).await.unwrap_err();
        assert_eq!(e.what, "fake S3 HeadObject");
    }
}
