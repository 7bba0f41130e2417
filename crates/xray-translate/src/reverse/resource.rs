//! The resource of a converted document: the `otel.resource` metadata our translator
//! keeps (the resource exactly as it was), or else one derived from the document itself:
//! `service.name` from a segment's name, `cloud.*` from its origin, and the `aws` block's
//! `ec2`, `ecs`, `eks`, `elastic_beanstalk`, `lambda`, `xray` and `cloudwatch_logs`
//! details, the `service` block and the resource ARN.

use xray_model::{Segment, origin};

use super::value::{Attrs, any, strings};
use crate::attributes::RESOURCE_NAMESPACE;

/// The resource attributes of a top-level document.
pub(crate) fn resource(doc: &Segment<'_>) -> Attrs {
    let mut r = Attrs::default();
    // Our translator's copy is the resource exactly as it was: nothing to add.
    if let Some(fields) = doc.metadata.get(RESOURCE_NAMESPACE) {
        fields.for_each(|k, v| r.set_any(k, any(v)));
        return r;
    }
    if !doc.is_standalone_subsegment() {
        r.set_default_str("service.name", Some(&doc.name));
    }
    if let Some((platform, launch_type)) = doc.origin.as_deref().and_then(origin::to_cloud_platform)
    {
        r.set_default_str("cloud.provider", Some("aws"));
        r.set_default_str("cloud.platform", Some(platform));
        r.set_default_str("aws.ecs.launchtype", launch_type);
    }
    if let Some(service) = &doc.service {
        r.set_default_str("service.version", service.version.as_deref());
        r.set_default_str("process.runtime.name", service.runtime.as_deref());
        r.set_default_str(
            "process.runtime.version",
            service.runtime_version.as_deref(),
        );
    }
    r.set_default_str("cloud.resource_id", doc.resource_arn.as_deref());
    let Some(aws) = doc.aws.as_deref() else {
        return r;
    };
    r.set_default_str("cloud.account.id", aws.account_id.as_deref());
    if let Some(ec2) = &aws.ec2 {
        // Without an origin, a cloud provider is what makes the translator read host.id.
        r.set_default_str("cloud.provider", Some("aws"));
        r.set_default_str("host.id", ec2.instance_id.as_deref());
        r.set_default_str("cloud.availability_zone", ec2.availability_zone.as_deref());
        r.set_default_str("host.type", ec2.instance_size.as_deref());
        r.set_default_str("host.image.id", ec2.ami_id.as_deref());
    }
    if let Some(ecs) = &aws.ecs {
        r.set_default_str("container.name", ecs.container.as_deref());
        r.set_default_str("container.id", ecs.container_id.as_deref());
        r.set_default_str("aws.ecs.task.arn", ecs.task_arn.as_deref());
        r.set_default_str("aws.ecs.task.family", ecs.task_family.as_deref());
        r.set_default_str("aws.ecs.cluster.arn", ecs.cluster_arn.as_deref());
        r.set_default_str("aws.ecs.launchtype", ecs.launch_type.as_deref());
    }
    if let Some(eks) = &aws.eks {
        r.set_default_str("cloud.provider", Some("aws"));
        r.set_default_str("k8s.cluster.name", eks.cluster_name.as_deref());
        r.set_default_str("k8s.pod.name", eks.pod.as_deref());
        r.set_default_str("container.id", eks.container_id.as_deref());
    }
    if let Some(eb) = &aws.elastic_beanstalk {
        r.set_default_str("service.namespace", eb.environment_name.as_deref());
        r.set_default_str("service.version", eb.version_label.as_deref());
        let deployment = eb.deployment_id.map(|id| id.to_string());
        r.set_default_str("service.instance.id", deployment.as_deref());
    }
    if let Some(lambda) = &aws.lambda {
        r.set_default_str("faas.name", lambda.function_name.as_deref());
        r.set_default_str("faas.version", lambda.function_version.as_deref());
    }
    if let Some(xray) = &aws.xray {
        // The translator writes `{telemetry.sdk.name} for {telemetry.sdk.language}`, as
        // the X-Ray SDKs name themselves ("X-Ray for Python").
        let (name, language) = match xray.sdk.as_deref().map(|s| s.rsplit_once(" for ")) {
            Some(Some((name, language))) => (Some(name), Some(language)),
            Some(None) => (xray.sdk.as_deref(), None),
            None => (None, None),
        };
        r.set_default_str("telemetry.sdk.name", name);
        r.set_default_str("telemetry.sdk.language", language);
        r.set_default_str("telemetry.sdk.version", xray.sdk_version.as_deref());
        if xray.auto_instrumentation {
            let version = xray.sdk_version.as_deref().unwrap_or("unknown");
            r.set_default_str("telemetry.auto.version", Some(version));
        }
    }
    if !aws.cloudwatch_logs.is_empty()
        && !r.has("aws.log.group.arns")
        && !r.has("aws.log.group.names")
    {
        let logs = &aws.cloudwatch_logs;
        if logs.iter().all(|l| l.arn.is_some()) {
            r.set(
                "aws.log.group.arns",
                strings(logs.iter().filter_map(|l| l.arn.as_deref())),
            );
        } else {
            r.set(
                "aws.log.group.names",
                strings(logs.iter().filter_map(|l| l.log_group.as_deref())),
            );
        }
    }
    r
}
