//! The `aws` block: call details of AWS SDK subsegments (operation, region, request id,
//! queue, tables) and, on segments, where the service runs (origin, EC2/ECS/EKS/Beanstalk/
//! Lambda), the SDK, the account and CloudWatch log groups, all from resource attributes.

use std::borrow::Cow;

use xray_model::{
    Aws, CloudWatchLogs, Ec2, Ecs, Eks, ElasticBeanstalk, Lambda, Service, XraySdk, origin,
};

use crate::config::Exclude;
use crate::keys::{K, Known};
use crate::view::{AttrValue, Attributes};

/// `rpc.system` of AWS SDK calls.
pub(crate) const AWS_API: &str = "aws-api";

fn b(s: Option<&str>) -> Option<Cow<'_, str>> {
    s.filter(|s| !s.is_empty()).map(Cow::Borrowed)
}

/// The resource attributes the rules read, found in one pass.
#[derive(Debug, Default)]
pub(crate) struct ResourceInfo<'a> {
    pub(crate) service_name: Option<&'a str>,
    service_namespace: Option<&'a str>,
    service_instance_id: Option<&'a str>,
    service_version: Option<&'a str>,
    cloud_provider: Option<&'a str>,
    cloud_platform: Option<&'a str>,
    cloud_account_id: Option<&'a str>,
    cloud_availability_zone: Option<&'a str>,
    cloud_resource_id: Option<&'a str>,
    host_id: Option<&'a str>,
    host_type: Option<&'a str>,
    host_image_id: Option<&'a str>,
    container_name: Option<&'a str>,
    container_id: Option<&'a str>,
    k8s_cluster_name: Option<&'a str>,
    k8s_pod_name: Option<&'a str>,
    ecs_cluster_arn: Option<&'a str>,
    ecs_task_arn: Option<&'a str>,
    ecs_task_family: Option<&'a str>,
    ecs_launch_type: Option<&'a str>,
    faas_name: Option<&'a str>,
    faas_version: Option<&'a str>,
    sdk_name: Option<&'a str>,
    pub(crate) sdk_language: Option<&'a str>,
    sdk_version: Option<&'a str>,
    auto_version: Option<&'a str>,
    runtime_name: Option<&'a str>,
    runtime_version: Option<&'a str>,
    log_group_names: Option<AttrValue<'a>>,
    log_group_arns: Option<AttrValue<'a>>,
}

impl<'a> ResourceInfo<'a> {
    /// Reads the resource's attributes, leaving out those matching `exclude`.
    pub(crate) fn collect(resource: Attributes<'a>, exclude: &Exclude) -> Self {
        let mut r = ResourceInfo::default();
        for (key, value) in resource.iter() {
            if !exclude.is_empty() && exclude.matches(key) {
                continue;
            }
            let slot = match key {
                "service.name" => &mut r.service_name,
                "service.namespace" => &mut r.service_namespace,
                "service.instance.id" => &mut r.service_instance_id,
                "service.version" => &mut r.service_version,
                "cloud.provider" => &mut r.cloud_provider,
                "cloud.platform" => &mut r.cloud_platform,
                "cloud.account.id" => &mut r.cloud_account_id,
                "cloud.availability_zone" => &mut r.cloud_availability_zone,
                "cloud.resource_id" => &mut r.cloud_resource_id,
                "host.id" => &mut r.host_id,
                "host.type" => &mut r.host_type,
                "host.image.id" => &mut r.host_image_id,
                "container.name" => &mut r.container_name,
                "container.id" => &mut r.container_id,
                "k8s.cluster.name" => &mut r.k8s_cluster_name,
                "k8s.pod.name" => &mut r.k8s_pod_name,
                "aws.ecs.cluster.arn" => &mut r.ecs_cluster_arn,
                "aws.ecs.task.arn" => &mut r.ecs_task_arn,
                "aws.ecs.task.family" => &mut r.ecs_task_family,
                "aws.ecs.launchtype" => &mut r.ecs_launch_type,
                "faas.name" => &mut r.faas_name,
                "faas.version" => &mut r.faas_version,
                "telemetry.sdk.name" => &mut r.sdk_name,
                "telemetry.sdk.language" => &mut r.sdk_language,
                "telemetry.sdk.version" => &mut r.sdk_version,
                "telemetry.auto.version" => &mut r.auto_version,
                "process.runtime.name" => &mut r.runtime_name,
                "process.runtime.version" => &mut r.runtime_version,
                "aws.log.group.names" => {
                    r.log_group_names = Some(value);
                    continue;
                }
                "aws.log.group.arns" => {
                    r.log_group_arns = Some(value);
                    continue;
                }
                _ => continue,
            };
            *slot = value.as_str().filter(|s| !s.is_empty());
        }
        r
    }

    /// Whether the resource is on AWS (or says nothing about its cloud).
    fn on_aws(&self) -> bool {
        self.cloud_provider.is_none_or(|p| p == "aws")
    }

    /// Whether the service is a Lambda function (`cloud.platform = aws_lambda`).
    pub(crate) fn is_lambda(&self) -> bool {
        self.on_aws() && self.cloud_platform == Some("aws_lambda")
    }

    /// The `origin` of a segment.
    pub(crate) fn origin(&self) -> Option<&'static str> {
        if !self.on_aws() {
            return None;
        }
        origin::from_cloud_platform(self.cloud_platform?, self.ecs_launch_type)
    }

    /// The ARN of the resource running the service (Lambda function ARN and the like).
    pub(crate) fn resource_arn(&self) -> Option<Cow<'a, str>> {
        b(self.cloud_resource_id).filter(|id| id.starts_with("arn:"))
    }

    /// The `service` block of a segment.
    pub(crate) fn service(&self) -> Option<Service<'a>> {
        let service = Service {
            version: b(self.service_version),
            runtime: b(self.runtime_name),
            runtime_version: b(self.runtime_version),
        };
        (service != Service::default()).then_some(service)
    }

    /// `aws.xray.sdk`: the SDK name, with its language when known.
    pub(crate) fn sdk(&self) -> Option<Cow<'a, str>> {
        match (self.sdk_name, self.sdk_language) {
            (Some(name), Some(language)) => Some(Cow::Owned(format!("{name} for {language}"))),
            (name, _) => b(name),
        }
    }

    /// Fills the resource part of a segment's `aws` block; `sdk` is [`ResourceInfo::sdk`]
    /// and `log_groups` the configured log group names.
    pub(crate) fn fill_segment(
        &self,
        aws: &mut Aws<'a>,
        sdk: Option<Cow<'a, str>>,
        log_groups: impl ExactSizeIterator<Item = Cow<'a, str>>,
    ) {
        if aws.account_id.is_none() {
            aws.account_id = b(self.cloud_account_id);
        }
        let platform = self.cloud_platform.unwrap_or("");
        if self.on_aws() {
            if platform == "aws_ec2" || (self.cloud_provider.is_some() && self.host_id.is_some()) {
                aws.ec2 = Some(Ec2 {
                    instance_id: b(self.host_id),
                    availability_zone: b(self.cloud_availability_zone),
                    instance_size: b(self.host_type),
                    ami_id: b(self.host_image_id),
                });
            }
            if platform == "aws_ecs" {
                aws.ecs = Some(Ecs {
                    container: b(self.container_name),
                    container_id: b(self.container_id),
                    task_arn: b(self.ecs_task_arn),
                    task_family: b(self.ecs_task_family),
                    cluster_arn: b(self.ecs_cluster_arn),
                    launch_type: b(self.ecs_launch_type),
                });
            }
            if platform == "aws_eks"
                || (self.cloud_provider.is_some() && self.k8s_cluster_name.is_some())
            {
                aws.eks = Some(Eks {
                    cluster_name: b(self.k8s_cluster_name),
                    pod: b(self.k8s_pod_name),
                    container_id: b(self.container_id),
                });
            }
            if platform == "aws_elastic_beanstalk" {
                aws.elastic_beanstalk = Some(ElasticBeanstalk {
                    environment_name: b(self.service_namespace),
                    version_label: b(self.service_version),
                    deployment_id: self.service_instance_id.and_then(|id| id.parse().ok()),
                });
            }
            if platform == "aws_lambda" {
                aws.lambda = Some(Lambda {
                    function_name: b(self.faas_name),
                    function_version: b(self.faas_version),
                });
            }
        }
        if self.sdk_name.is_some() || self.sdk_version.is_some() || self.auto_version.is_some() {
            let xray = aws.xray.get_or_insert_with(XraySdk::default);
            xray.sdk = sdk;
            xray.sdk_version = b(self.sdk_version);
            xray.auto_instrumentation = self.auto_version.is_some();
        }
        aws.cloudwatch_logs = self.cloudwatch_logs(log_groups);
    }

    /// Log groups from the ARNs, else the names, else the configured names.
    fn cloudwatch_logs(
        &self,
        configured: impl ExactSizeIterator<Item = Cow<'a, str>>,
    ) -> Vec<CloudWatchLogs<'a>> {
        if let Some(arns) = &self.log_group_arns {
            let groups = list(arns, |arn| CloudWatchLogs {
                // arn:aws:logs:region:account:log-group:NAME[:*]
                log_group: arn.split(':').nth(6).map(Cow::Borrowed),
                arn: Some(Cow::Borrowed(arn)),
            });
            if !groups.is_empty() {
                return groups;
            }
        }
        if let Some(names) = &self.log_group_names {
            let groups = list(names, |name| CloudWatchLogs {
                log_group: Some(Cow::Borrowed(name)),
                arn: None,
            });
            if !groups.is_empty() {
                return groups;
            }
        }
        configured
            .map(|name| CloudWatchLogs {
                log_group: Some(name),
                arn: None,
            })
            .collect()
    }
}

/// Items of a string array, or of a string holding `&`-separated items (the form
/// `OTEL_RESOURCE_ATTRIBUTES` allows); empty items are skipped.
fn items<'a>(value: &AttrValue<'a>) -> impl Iterator<Item = &'a str> + use<'a> {
    let (split, array) = match value {
        AttrValue::Str(s) => (Some(s.split('&')), None),
        &AttrValue::Array(array) => (
            None,
            Some((0..array.len()).filter_map(move |i| array.get(i)?.as_str())),
        ),
        _ => (None, None),
    };
    split
        .into_iter()
        .flatten()
        .chain(array.into_iter().flatten())
        .filter(|s| !s.is_empty())
}

/// The [`items`] of a list, each made into a `T`.
fn list<'a, T>(value: &AttrValue<'a>, make: impl Fn(&'a str) -> T) -> Vec<T> {
    items(value).map(make).collect()
}

/// Fills the call details of an AWS SDK call (or any span carrying them) into `aws`.
pub(crate) fn fill_call<'a>(known: &mut Known<'a>, aws: &mut Aws<'a>, aws_call: bool) {
    aws.operation = b(known.first_str(&[K::AwsOperation]));
    if aws.operation.is_none() && aws_call {
        aws.operation = b(known.first_str(&[K::RpcMethod]));
    }
    aws.region = b(known.first_str(&[K::AwsRegion]));
    aws.request_id = b(known.first_str(&[K::AwsRequestId, K::AwsRequestIdCamel]));
    aws.account_id = b(known.first_str(&[K::AwsAccountId]));
    aws.queue_url = b(known.first_str(&[
        K::AwsSqsQueueUrl,
        K::AwsSqsQueueUrlDotted,
        K::AwsQueueUrl,
        K::AwsQueueUrlDotted,
    ]));
    if aws.queue_url.is_none() && aws_call {
        aws.queue_url = b(known.first_str(&[K::MessagingUrl]));
    }
    aws.table_name = b(known.first_str(&[K::AwsTableNameDotted, K::AwsTableName]));
    if let Some(tables) = known.peek(K::AwsDynamoDbTableNames) {
        // One name (the usual case) is read without collecting the list.
        let mut names = items(&tables);
        match (names.next(), names.next()) {
            (None, _) => {}
            (Some(one), None) => {
                if aws.table_name.as_deref().is_none_or(|t| t == one) {
                    aws.table_name = Some(Cow::Borrowed(one));
                    known.mark(K::AwsDynamoDbTableNames);
                }
            }
            _ => {
                aws.table_names = list(&tables, Cow::Borrowed);
                known.mark(K::AwsDynamoDbTableNames);
            }
        }
    }
    if let Some(resends) = known.peek_int(K::HttpResendCount)
        && let Ok(resends) = u32::try_from(resends)
    {
        known.mark(K::HttpResendCount);
        aws.retries = Some(resends);
    }
    if let Some(rule) = known.first_str(&[K::XraySamplingRuleName]) {
        aws.xray
            .get_or_insert_with(XraySdk::default)
            .sampling_rule_name = Some(Cow::Borrowed(rule));
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::{Array, KeyValue, StringValue, Value};

    use super::*;
    use crate::config::TranslatorConfig;

    /// `fill_call` on a span with `attrs`: the table fields, and whether the table list
    /// was used (else it stays in metadata).
    fn tables(attrs: Vec<KeyValue>) -> (Option<String>, Vec<String>, bool) {
        let attrs = Attributes::sdk(&attrs);
        let mut known = Known::collect(attrs, &TranslatorConfig::default());
        let mut aws = Aws::default();
        fill_call(&mut known, &mut aws, true);
        (
            aws.table_name.map(Cow::into_owned),
            aws.table_names.into_iter().map(Cow::into_owned).collect(),
            known.is_used(K::AwsDynamoDbTableNames),
        )
    }

    fn names(list: &[&str]) -> KeyValue {
        let list = list
            .iter()
            .map(|s| StringValue::from(s.to_string()))
            .collect();
        KeyValue::new(
            "aws.dynamodb.table_names",
            Value::Array(Array::String(list)),
        )
    }

    #[test]
    fn dynamodb_table_lists() {
        let one = |s: &str| Some(s.to_owned());
        let many = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            tables(vec![names(&["carts"])]),
            (one("carts"), vec![], true)
        );
        // Empty items are skipped, in arrays and in `&`-separated strings.
        assert_eq!(
            tables(vec![names(&["", "carts", ""])]),
            (one("carts"), vec![], true)
        );
        let text = |s: &str| KeyValue::new("aws.dynamodb.table_names", s.to_owned());
        assert_eq!(tables(vec![text("carts")]), (one("carts"), vec![], true));
        assert_eq!(tables(vec![text("&carts&")]), (one("carts"), vec![], true));
        assert_eq!(
            tables(vec![text("carts&users")]),
            (None, many(&["carts", "users"]), true)
        );
        assert_eq!(
            tables(vec![names(&["carts", "", "users"])]),
            (None, many(&["carts", "users"]), true)
        );
        for empty in [names(&[]), names(&["", ""]), text(""), text("&&")] {
            assert_eq!(tables(vec![empty]), (None, vec![], false));
        }
        // A single name agreeing with `aws.table_name` is used; another one is kept.
        let table = KeyValue::new("aws.table_name", "carts");
        assert_eq!(
            tables(vec![table.clone(), names(&["carts"])]),
            (one("carts"), vec![], true)
        );
        assert_eq!(
            tables(vec![table.clone(), names(&["users"])]),
            (one("carts"), vec![], false)
        );
        assert_eq!(
            tables(vec![table, names(&["users", "carts"])]),
            (one("carts"), many(&["users", "carts"]), true)
        );
        assert_eq!(
            tables(vec![KeyValue::new("aws.dynamodb.table_names", 7)]),
            (None, vec![], false)
        );
    }
}
