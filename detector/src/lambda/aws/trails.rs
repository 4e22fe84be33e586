//! CloudTrail, for trail health.

use super::ctx;
use crate::lambda::ports::{FieldCondition, PortError, PortResult, TrailInfo, TrailsApi};
use futures::FutureExt;

/// CloudTrail through `aws-sdk-cloudtrail`: DescribeTrails in the
/// detector's region (shadow trails included, so a multi-region or
/// organization trail homed elsewhere counts), then GetTrailStatus and
/// GetEventSelectors for each trail **in its home region** (a client per
/// region, made once). A trail that cannot be read carries its error; the
/// others are still read.
#[derive(Debug)]
pub struct SdkTrails {
    sdk: aws_config::SdkConfig,
    client: aws_sdk_cloudtrail::Client,
    by_region: std::sync::Mutex<std::collections::HashMap<String, aws_sdk_cloudtrail::Client>>,
}

impl SdkTrails {
    pub fn new(sdk: &aws_config::SdkConfig) -> SdkTrails {
        SdkTrails {
            sdk: sdk.clone(),
            client: aws_sdk_cloudtrail::Client::new(sdk),
            by_region: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    fn client_for(&self, region: Option<&str>) -> aws_sdk_cloudtrail::Client {
        let Some(region) = region.filter(|r| Some(*r) != self.sdk.region().map(|x| x.as_ref()))
        else {
            return self.client.clone();
        };
        let mut map = self.by_region.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(region.to_string())
            .or_insert_with(|| {
                aws_sdk_cloudtrail::Client::from_conf(
                    aws_sdk_cloudtrail::config::Builder::from(&self.sdk)
                        .region(aws_config::Region::new(region.to_string()))
                        .build(),
                )
            })
            .clone()
    }

    async fn read_trail(&self, t: &aws_sdk_cloudtrail::types::Trail) -> Result<TrailInfo, String> {
        let name = t.name().unwrap_or_default().to_string();
        let arn = t.trail_arn().unwrap_or_default().to_string();
        let id = if arn.is_empty() {
            name.clone()
        } else {
            arn.clone()
        };
        let client = self.client_for(t.home_region());
        let status = client
            .get_trail_status()
            .name(&id)
            .send()
            .await
            .map_err(|e| format!("GetTrailStatus: {}", ctx(e)))?;
        let sel = client
            .get_event_selectors()
            .trail_name(&id)
            .send()
            .await
            .map_err(|e| format!("GetEventSelectors: {}", ctx(e)))?;
        let nonempty = |s: Option<&str>| s.filter(|s| !s.is_empty()).map(str::to_string);
        Ok(TrailInfo {
            name,
            arn,
            home_region: t.home_region().map(str::to_string),
            is_multi_region: t.is_multi_region_trail().unwrap_or(false),
            is_organization_trail: t.is_organization_trail().unwrap_or(false),
            s3_bucket_name: t.s3_bucket_name().map(str::to_string),
            is_logging: status.is_logging().unwrap_or(false),
            advanced_selectors: sel
                .advanced_event_selectors()
                .iter()
                .map(|s| {
                    s.field_selectors()
                        .iter()
                        .map(|f| FieldCondition {
                            field: f.field().to_string(),
                            equals: f.equals().to_vec(),
                            not_equals: f.not_equals().to_vec(),
                            starts_with: f.starts_with().to_vec(),
                            not_starts_with: f.not_starts_with().to_vec(),
                            ends_with: f.ends_with().to_vec(),
                            not_ends_with: f.not_ends_with().to_vec(),
                        })
                        .collect()
                })
                .collect(),
            basic_selectors: sel.event_selectors().len(),
            latest_delivery_error: nonempty(status.latest_delivery_error()),
            latest_digest_delivery_error: nonempty(status.latest_digest_delivery_error()),
            read_error: None,
        })
    }
}

impl TrailsApi for SdkTrails {
    fn trails(&self) -> PortResult<'_, Vec<TrailInfo>> {
        async move {
            let out = self
                .client
                .describe_trails()
                .include_shadow_trails(true)
                .send()
                .await
                .map_err(|e| PortError::new("CloudTrail DescribeTrails", ctx(e)))?;
            let reads = out.trail_list().iter().map(|t| async move {
                match self.read_trail(t).await {
                    Ok(info) => info,
                    Err(e) => TrailInfo {
                        name: t.name().unwrap_or_default().to_string(),
                        arn: t.trail_arn().unwrap_or_default().to_string(),
                        home_region: t.home_region().map(str::to_string),
                        read_error: Some(e),
                        ..TrailInfo::default()
                    },
                }
            });
            Ok(futures::future::join_all(reads).await)
        }
        .boxed()
    }
}
