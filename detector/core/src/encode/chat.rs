//! A chat-ready message: the AWS Chatbot custom notification schema
//! (`version` 1.0, `source` custom, `content` with title, description and
//! next steps, `metadata`), published to SNS for Chatbot to post to Slack or
//! Teams. Chat clients render Markdown, so every value from a record is put
//! in a code span (backticks removed from it): no value can become a link,
//! a mention or formatting.

use super::console_url;
use crate::finding::Finding;
use crate::text::{FIELD_MAX, clean};
use serde_json::{Value, json};

/// `value` as an inert Markdown code span.
pub fn code(value: &str) -> String {
    format!("`{}`", clean(value, FIELD_MAX).replace('`', "'"))
}

/// The notification.
pub fn notification(f: &Finding) -> Value {
    let who = f
        .principal_arn
        .as_deref()
        .or(f.identity_type.as_deref())
        .map_or_else(|| "-".to_string(), code);
    let what = f
        .microvm_id
        .as_deref()
        .or(f.resource.as_deref())
        .map_or_else(|| "-".to_string(), code);
    let mut description = format!(
        "*{}* {}\n*Who:* {who}\n*What:* {what}\n*When:* {}\n*Where:* {} / {}\n*Rule:* {}",
        f.severity.as_str().to_uppercase(),
        code(&f.summary),
        f.event_time.as_deref().map_or_else(|| "-".into(), code),
        f.account_id.as_deref().map_or_else(|| "-".into(), code),
        f.region.as_deref().map_or_else(|| "-".into(), code),
        code(f.rule.as_str()),
    );
    if let Some(reason) = &f.reason {
        description.push_str(&format!("\n*Why:* {}", code(reason)));
    }
    if let Some(done) = &f.remediation {
        description.push_str(&format!("\n*Done:* {}", code(done)));
    }
    let mut next_steps = vec![f.recommended_action.clone()];
    if let Some(url) = console_url(f) {
        next_steps.push(format!("CloudTrail event: {url}"));
    }
    let related: Vec<String> = f
        .microvm_id
        .as_deref()
        .or(f.resource.as_deref())
        .map(|r| clean(r, FIELD_MAX))
        .into_iter()
        .collect();
    json!({
        "version": "1.0",
        "source": "custom",
        "id": f.uid(),
        "content": {
            "textType": "client-markdown",
            "title": format!(
                "[{}] {}",
                f.severity.as_str().to_uppercase(),
                clean(f.event.as_str(), FIELD_MAX)
            ),
            "description": description,
            "nextSteps": next_steps,
            "keywords": [f.rule.as_str(), f.severity.as_str()],
        },
        "metadata": {
            "threadId": clean(&f.incident_key, FIELD_MAX),
            "summary": clean(&f.summary, FIELD_MAX),
            "eventType": f.event.as_str(),
            "relatedResources": related,
            "additionalContext": {
                "rule": f.rule.as_str(),
                "severity": f.severity.as_str(),
            },
        },
    })
}
