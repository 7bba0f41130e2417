//! Segment documents: the JSON X-Ray stores for every segment and subsegment.
//!
//! Strings are `Cow<'a, str>` so a translator can borrow from the span it reads and
//! allocate only where it must change a value. Empty fields are omitted on the wire.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Namespace, SegmentId, TraceId};

/// Subsegment namespace for AWS SDK calls.
pub const NAMESPACE_AWS: &str = "aws";
/// Subsegment namespace for other downstream calls (HTTP, databases, queues, …).
pub const NAMESPACE_REMOTE: &str = "remote";
/// The `type` value of a subsegment sent as its own document.
pub const TYPE_SUBSEGMENT: &str = "subsegment";
/// The metadata namespace for values with no namespace of their own.
pub const METADATA_DEFAULT: &str = "default";

/// Known `origin` values.
pub mod origin {
    /// An EC2 instance.
    pub const EC2_INSTANCE: &str = "AWS::EC2::Instance";
    /// A container on ECS (launch type unknown).
    pub const ECS_CONTAINER: &str = "AWS::ECS::Container";
    /// An ECS task on the EC2 launch type.
    pub const ECS_EC2: &str = "AWS::ECS::EC2";
    /// An ECS task on Fargate.
    pub const ECS_FARGATE: &str = "AWS::ECS::Fargate";
    /// A container on EKS.
    pub const EKS_CONTAINER: &str = "AWS::EKS::Container";
    /// An Elastic Beanstalk environment.
    pub const ELASTIC_BEANSTALK: &str = "AWS::ElasticBeanstalk::Environment";
    /// A Lambda function.
    pub const LAMBDA_FUNCTION: &str = "AWS::Lambda::Function";
    /// An App Runner service.
    pub const APP_RUNNER: &str = "AWS::AppRunner::Service";

    /// The origin for an OpenTelemetry `cloud.platform` value (`aws_ec2`, `aws_ecs`,
    /// `aws_eks`, `aws_elastic_beanstalk`, `aws_lambda`, `aws_app_runner`), refined for ECS by
    /// `aws.ecs.launchtype` (`ec2`/`fargate`, any case). Sampling rules' `ServiceType`
    /// matches this too.
    ///
    /// # Examples
    ///
    /// ```
    /// use xray_model::origin;
    /// assert_eq!(origin::from_cloud_platform("aws_ecs", Some("FARGATE")), Some(origin::ECS_FARGATE));
    /// assert_eq!(origin::from_cloud_platform("gcp_compute_engine", None), None);
    /// ```
    pub fn from_cloud_platform(
        platform: &str,
        ecs_launch_type: Option<&str>,
    ) -> Option<&'static str> {
        Some(match platform {
            "aws_ec2" => EC2_INSTANCE,
            "aws_ecs" => match ecs_launch_type {
                Some(t) if t.eq_ignore_ascii_case("ec2") => ECS_EC2,
                Some(t) if t.eq_ignore_ascii_case("fargate") => ECS_FARGATE,
                _ => ECS_CONTAINER,
            },
            "aws_eks" => EKS_CONTAINER,
            "aws_elastic_beanstalk" => ELASTIC_BEANSTALK,
            "aws_lambda" => LAMBDA_FUNCTION,
            "aws_app_runner" => APP_RUNNER,
            _ => return None,
        })
    }

    /// The OpenTelemetry `cloud.platform` of an origin, and for ECS the
    /// `aws.ecs.launchtype` it implies: the inverse of [`from_cloud_platform`].
    ///
    /// ```
    /// use xray_model::origin;
    /// assert_eq!(origin::to_cloud_platform(origin::ECS_FARGATE), Some(("aws_ecs", Some("fargate"))));
    /// assert_eq!(origin::to_cloud_platform("AWS::Other"), None);
    /// ```
    pub fn to_cloud_platform(origin: &str) -> Option<(&'static str, Option<&'static str>)> {
        Some(match origin {
            EC2_INSTANCE => ("aws_ec2", None),
            ECS_CONTAINER => ("aws_ecs", None),
            ECS_EC2 => ("aws_ecs", Some("ec2")),
            ECS_FARGATE => ("aws_ecs", Some("fargate")),
            EKS_CONTAINER => ("aws_eks", None),
            ELASTIC_BEANSTALK => ("aws_elastic_beanstalk", None),
            LAMBDA_FUNCTION => ("aws_lambda", None),
            APP_RUNNER => ("aws_app_runner", None),
            _ => return None,
        })
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Epoch seconds with microsecond precision, as X-Ray's `start_time` and `end_time`.
#[inline]
pub fn epoch_seconds(time: SystemTime) -> f64 {
    let micros = match time.duration_since(UNIX_EPOCH) {
        Ok(d) => micros_f64(d),
        Err(e) => -micros_f64(e.duration()),
    };
    micros / 1e6
}

/// `d.as_micros() as f64`, in `u64` arithmetic while it fits (the same integer, so the
/// same rounding; 128-bit conversions are slow).
#[inline]
fn micros_f64(d: std::time::Duration) -> f64 {
    match d
        .as_secs()
        .checked_mul(1_000_000)
        .and_then(|m| m.checked_add(u64::from(d.subsec_micros())))
    {
        Some(micros) => micros as f64,
        None => d.as_micros() as f64,
    }
}

/// Epoch seconds from nanoseconds since the epoch (OTLP's time unit), to the microsecond.
#[inline]
pub fn epoch_seconds_from_nanos(nanos: u64) -> f64 {
    (nanos / 1_000) as f64 / 1e6
}

/// Ordered key-value pairs written as a JSON object. Keys are expected to be unique: the
/// builders in this crate ([`Fields::insert`]) replace an existing key instead of adding it
/// twice.
#[derive(Clone, PartialEq)]
pub struct Fields<'a, V>(pub Vec<(Cow<'a, str>, V)>);

impl<V> Default for Fields<'_, V> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<'a, V> Fields<'a, V> {
    /// No fields.
    pub const fn new() -> Self {
        Self(Vec::new())
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many fields there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Sets `key` to `value`, replacing an earlier value for the same key.
    pub fn insert(&mut self, key: impl Into<Cow<'a, str>>, value: V) {
        let key = key.into();
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key, value)),
        }
    }

    /// The value for `key`.
    pub fn get(&self, key: &str) -> Option<&V> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The value for `key`, mutably.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        self.0.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Iterates over the fields in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &V)> {
        self.0.iter().map(|(k, v)| (k.as_ref(), v))
    }
}

impl<V: fmt::Debug> fmt::Debug for Fields<'_, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| (k, v)))
            .finish()
    }
}

impl<V: Serialize> Serialize for Fields<'_, V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Fields<'_, V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for Visit<V> {
            type Value = Vec<(String, V)>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(m.size_hint().unwrap_or(0).min(256));
                while let Some((k, v)) = m.next_entry::<String, V>()? {
                    out.push((k, v));
                }
                Ok(out)
            }
        }
        let pairs = d.deserialize_map(Visit(PhantomData))?;
        let mut fields = Fields::new();
        for (k, v) in pairs {
            fields.insert(k, v);
        }
        Ok(fields)
    }
}

/// An annotation value: X-Ray indexes strings, numbers and booleans.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AnnotationValue<'a> {
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating point number (must be finite to be written as JSON).
    Float(f64),
    /// A string, at most [`crate::limits::MAX_ANNOTATION_VALUE_CHARS`] characters.
    Str(Cow<'a, str>),
}

/// Any JSON value, for metadata and link attributes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AnyValue<'a> {
    /// `null`.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating point number; non-finite values are written as `null` by JSON.
    Float(f64),
    /// A string.
    Str(Cow<'a, str>),
    /// An array.
    Array(Vec<AnyValue<'a>>),
    /// An object.
    Object(Fields<'a, AnyValue<'a>>),
}

/// Metadata: namespaces (`default`, or the user's) of arbitrary key-value data.
pub type Metadata<'a> = Fields<'a, Namespace<'a>>;

/// A segment or subsegment document.
///
/// The same type serves both: a segment has no `type`; a subsegment embedded in its parent's
/// `subsegments` needs only `name`, `id` and times; a subsegment sent on its own carries
/// `type: "subsegment"`, `trace_id` and `parent_id` (see [`Segment::detach`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Segment<'a> {
    /// Service name for a segment, downstream name for a subsegment (see [`crate::limits`]).
    pub name: Cow<'a, str>,
    /// This document's id.
    pub id: SegmentId,
    /// The trace; required on top-level documents, omitted on embedded subsegments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<TraceId>,
    /// `"subsegment"` on a subsegment sent as its own document.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<Cow<'a, str>>,
    /// The parent (sub)segment, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<SegmentId>,
    /// Start, in epoch seconds.
    pub start_time: f64,
    /// End, in epoch seconds; absent while in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<f64>,
    /// Set instead of `end_time` for work not finished yet.
    #[serde(default, skip_serializing_if = "is_false")]
    pub in_progress: bool,
    /// `aws` or `remote` on subsegments for downstream calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<Cow<'a, str>>,
    /// The kind of resource running the service, e.g. [`origin::ECS_FARGATE`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Cow<'a, str>>,
    /// The user who made the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<Cow<'a, str>>,
    /// The ARN of the resource running the service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_arn: Option<Cow<'a, str>>,
    /// Subsegments only: the downstream call is itself traced.
    #[serde(default, skip_serializing_if = "is_false")]
    pub traced: bool,
    /// Service version and runtime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<Service<'a>>,
    /// HTTP request and response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<Http<'a>>,
    /// AWS resource and SDK call details (boxed: the block is large and most subsegments
    /// have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<Box<Aws<'a>>>,
    /// SQL query details (boxed: only database calls have them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<Box<Sql<'a>>>,
    /// Client error (4xx).
    #[serde(default, skip_serializing_if = "is_false")]
    pub error: bool,
    /// Throttled (429); comes with `error`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub throttle: bool,
    /// Server error (5xx) or failure.
    #[serde(default, skip_serializing_if = "is_false")]
    pub fault: bool,
    /// What went wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<Cause<'a>>,
    /// Indexed key-value pairs for filter expressions.
    #[serde(default, skip_serializing_if = "Fields::is_empty")]
    pub annotations: Fields<'a, AnnotationValue<'a>>,
    /// Unindexed data by namespace.
    #[serde(default, skip_serializing_if = "Fields::is_empty")]
    pub metadata: Metadata<'a>,
    /// Embedded subsegments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subsegments: Vec<Segment<'a>>,
    /// Subsegments that finished before this one started, in the same parent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub precursor_ids: Vec<SegmentId>,
    /// Links to other traces or segments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<Link<'a>>,
}

/// The `service` block.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Service<'a> {
    /// The application version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<Cow<'a, str>>,
    /// The language runtime, e.g. `rust`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<Cow<'a, str>>,
    /// The runtime's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_version: Option<Cow<'a, str>>,
}

/// The `http` block.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Http<'a> {
    /// The request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<HttpRequest<'a>>,
    /// The response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<HttpResponse>,
}

/// `http.request`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpRequest<'a> {
    /// Method, e.g. `GET`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<Cow<'a, str>>,
    /// Full URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<Cow<'a, str>>,
    /// The client's user agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<Cow<'a, str>>,
    /// The client's IP address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<Cow<'a, str>>,
    /// `client_ip` came from `X-Forwarded-For` and may be forged.
    #[serde(default, skip_serializing_if = "is_false")]
    pub x_forwarded_for: bool,
    /// Subsegments only: the callee is traced too.
    #[serde(default, skip_serializing_if = "is_false")]
    pub traced: bool,
}

/// `http.response`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpResponse {
    /// Status code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Body length in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_length: Option<u64>,
}

/// The `aws` block: resource details on segments, call details on AWS SDK subsegments.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Aws<'a> {
    /// The account that owns the resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<Cow<'a, str>>,
    /// The API operation, e.g. `PutItem`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<Cow<'a, str>>,
    /// The region of the called resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<Cow<'a, str>>,
    /// The request id the service returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<Cow<'a, str>>,
    /// SQS queue URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_url: Option<Cow<'a, str>>,
    /// DynamoDB table name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_name: Option<Cow<'a, str>>,
    /// DynamoDB table names, for calls on several tables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub table_names: Vec<Cow<'a, str>>,
    /// How many times the SDK retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// EC2 instance details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ec2: Option<Ec2<'a>>,
    /// ECS container details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecs: Option<Ecs<'a>>,
    /// EKS pod details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eks: Option<Eks<'a>>,
    /// Elastic Beanstalk environment details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elastic_beanstalk: Option<ElasticBeanstalk<'a>>,
    /// Lambda function details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lambda: Option<Lambda<'a>>,
    /// The SDK that produced the document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xray: Option<XraySdk<'a>>,
    /// CloudWatch log groups of the service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cloudwatch_logs: Vec<CloudWatchLogs<'a>>,
}

/// `aws.ec2`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ec2<'a> {
    /// Instance id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<Cow<'a, str>>,
    /// Availability zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<Cow<'a, str>>,
    /// Instance type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_size: Option<Cow<'a, str>>,
    /// AMI id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ami_id: Option<Cow<'a, str>>,
}

/// `aws.ecs`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ecs<'a> {
    /// Container (host) name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<Cow<'a, str>>,
    /// Container id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<Cow<'a, str>>,
    /// Task ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_arn: Option<Cow<'a, str>>,
    /// Task family.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_family: Option<Cow<'a, str>>,
    /// Cluster ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_arn: Option<Cow<'a, str>>,
    /// Launch type: `ec2` or `fargate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch_type: Option<Cow<'a, str>>,
}

/// `aws.eks`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Eks<'a> {
    /// Cluster name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_name: Option<Cow<'a, str>>,
    /// Pod name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<Cow<'a, str>>,
    /// Container id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<Cow<'a, str>>,
}

/// `aws.elastic_beanstalk`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ElasticBeanstalk<'a> {
    /// Environment name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment_name: Option<Cow<'a, str>>,
    /// Application version label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_label: Option<Cow<'a, str>>,
    /// Deployment id (a number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_id: Option<i64>,
}

/// `aws.lambda`: the function the document came from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Lambda<'a> {
    /// Function name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_name: Option<Cow<'a, str>>,
    /// Function version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_version: Option<Cow<'a, str>>,
}

/// `aws.xray`: the SDK that produced the document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct XraySdk<'a> {
    /// SDK name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdk: Option<Cow<'a, str>>,
    /// SDK version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdk_version: Option<Cow<'a, str>>,
    /// Whether the spans came from automatic instrumentation.
    #[serde(default, skip_serializing_if = "is_false")]
    pub auto_instrumentation: bool,
    /// The sampling rule that sampled the trace, as the X-Ray SDKs record it
    /// (`aws.xray.sampling_rule_name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampling_rule_name: Option<Cow<'a, str>>,
}

/// One entry of `aws.cloudwatch_logs`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CloudWatchLogs<'a> {
    /// Log group name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_group: Option<Cow<'a, str>>,
    /// Log group ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<Cow<'a, str>>,
}

/// The `sql` block.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sql<'a> {
    /// Database URL without a password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<Cow<'a, str>>,
    /// Connection string without a password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_string: Option<Cow<'a, str>>,
    /// The query, with user values removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sanitized_query: Option<Cow<'a, str>>,
    /// Database engine, e.g. `PostgreSQL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_type: Option<Cow<'a, str>>,
    /// Database version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_version: Option<Cow<'a, str>>,
    /// Driver name and version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_version: Option<Cow<'a, str>>,
    /// Database user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<Cow<'a, str>>,
    /// `call` or `statement`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preparation: Option<Cow<'a, str>>,
}

/// The `cause` of an error or fault: details, or the id of an exception recorded elsewhere.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Cause<'a> {
    /// The id of an exception in another (sub)segment of the trace.
    ExceptionId(SegmentId),
    /// Exceptions recorded here.
    Details(CauseDetails<'a>),
}

/// A cause with its exceptions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CauseDetails<'a> {
    /// Working directory of the process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_directory: Option<Cow<'a, str>>,
    /// Paths of libraries or modules in use.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<Cow<'a, str>>,
    /// The exceptions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exceptions: Vec<Exception<'a>>,
}

/// One exception.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Exception<'a> {
    /// Unique id of the exception within the trace.
    pub id: SegmentId,
    /// The message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<Cow<'a, str>>,
    /// The exception type.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<Cow<'a, str>>,
    /// Caused by a downstream service.
    #[serde(default, skip_serializing_if = "is_false")]
    pub remote: bool,
    /// Stack frames left out at the end of `stack`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated: Option<u32>,
    /// Exceptions skipped between this one and its cause.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<u32>,
    /// The id of this exception's cause.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<SegmentId>,
    /// Stack frames, innermost first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stack: Vec<StackFrame<'a>>,
}

/// One stack frame.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StackFrame<'a> {
    /// Source file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<Cow<'a, str>>,
    /// Line number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// Function or method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<Cow<'a, str>>,
}

/// A link to another trace or segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Link<'a> {
    /// The linked trace.
    pub trace_id: TraceId,
    /// The linked segment or subsegment.
    pub id: SegmentId,
    /// Attributes of the link.
    #[serde(default, skip_serializing_if = "Fields::is_empty")]
    pub attributes: Fields<'a, AnyValue<'a>>,
}

impl<'a> Segment<'a> {
    /// A new document with a name, ids and start time; everything else empty.
    ///
    /// # Examples
    ///
    /// ```
    /// use xray_model::{Segment, SegmentId, TraceId};
    ///
    /// let trace_id: TraceId = "1-5759e988-bd862e3fe1be46a994272793".parse().unwrap();
    /// let mut segment = Segment::new("checkout", SegmentId::from_u64(0x53995c3f42cd8ad8), trace_id, 1.5);
    /// segment.end_time = Some(2.25);
    /// assert_eq!(
    ///     segment.to_json(),
    ///     r#"{"name":"checkout","id":"53995c3f42cd8ad8","trace_id":"1-5759e988-bd862e3fe1be46a994272793","start_time":1.5,"end_time":2.25}"#
    /// );
    /// ```
    pub fn new(
        name: impl Into<Cow<'a, str>>,
        id: SegmentId,
        trace_id: TraceId,
        start_time: f64,
    ) -> Self {
        Self {
            name: name.into(),
            id,
            trace_id: Some(trace_id),
            start_time,
            ..Self::default()
        }
    }

    /// Whether this is a subsegment sent on its own (`type: "subsegment"`).
    pub fn is_standalone_subsegment(&self) -> bool {
        self.kind.as_deref() == Some(TYPE_SUBSEGMENT)
    }

    /// Turns an embedded subsegment into a standalone document under `parent`.
    pub fn detach(&mut self, trace_id: TraceId, parent: SegmentId) {
        self.kind = Some(Cow::Borrowed(TYPE_SUBSEGMENT));
        self.trace_id = Some(trace_id);
        self.parent_id = Some(parent);
    }

    /// How many (sub)segments the document holds: itself and every embedded subsegment.
    pub fn span_count(&self) -> usize {
        if self.subsegments.is_empty() {
            return 1;
        }
        let mut count = 0;
        let mut stack = vec![self];
        while let Some(doc) = stack.pop() {
            count += 1;
            stack.extend(doc.subsegments.iter());
        }
        count
    }

    /// Sets a metadata value in a namespace, replacing an earlier value for the same key.
    pub fn put_metadata(
        &mut self,
        namespace: impl Into<Cow<'a, str>>,
        key: impl Into<Cow<'a, str>>,
        value: AnyValue<'a>,
    ) {
        let namespace = namespace.into();
        match self.metadata.get_mut(&namespace) {
            Some(ns) => ns.fields_mut().insert(key, value),
            None => {
                let mut ns = Fields::new();
                ns.insert(key, value);
                self.metadata.insert(namespace, Namespace::from(ns));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn into_owned_keeps_non_finite_values() {
        // Through JSON this panicked: non-finite floats are written as `null`.
        let name = String::from("n");
        let mut doc = Segment::new(
            name.as_str(),
            SegmentId::from_u64(1),
            TraceId::from_u128(1),
            f64::NAN,
        );
        doc.end_time = Some(f64::INFINITY);
        doc.annotations
            .insert("a", AnnotationValue::Float(f64::NEG_INFINITY));
        doc.put_metadata("ns", "k", AnyValue::Str(Cow::Borrowed(name.as_str())));
        let mut sub = doc.clone();
        sub.start_time = 2.0;
        doc.subsegments.push(sub);
        let owned = doc.into_owned();
        drop(name);
        assert!(owned.start_time.is_nan());
        assert_eq!(owned.end_time, Some(f64::INFINITY));
        assert_eq!(
            owned.annotations.get("a"),
            Some(&AnnotationValue::Float(f64::NEG_INFINITY))
        );
        assert_eq!(owned.subsegments[0].start_time, 2.0);
        assert_eq!(owned.subsegments[0].end_time, Some(f64::INFINITY));
        assert_eq!(
            owned.metadata.get("ns").map(|n| n.to_fields().0),
            Some(vec![("k".into(), AnyValue::Str("n".into()))])
        );
    }

    #[test]
    fn origin_from_every_aws_platform() {
        use super::origin::*;
        for (platform, launch, want) in [
            ("aws_ec2", None, Some(EC2_INSTANCE)),
            ("aws_ecs", None, Some(ECS_CONTAINER)),
            ("aws_ecs", Some("ec2"), Some(ECS_EC2)),
            ("aws_ecs", Some("Fargate"), Some(ECS_FARGATE)),
            ("aws_ecs", Some("other"), Some(ECS_CONTAINER)),
            ("aws_eks", None, Some(EKS_CONTAINER)),
            ("aws_elastic_beanstalk", None, Some(ELASTIC_BEANSTALK)),
            ("aws_lambda", None, Some(LAMBDA_FUNCTION)),
            ("aws_app_runner", None, Some(APP_RUNNER)),
            ("", None, None),
            ("AWS_EC2", None, None),
        ] {
            assert_eq!(
                from_cloud_platform(platform, launch),
                want,
                "{platform} {launch:?}"
            );
            if let Some(origin) = want {
                let (p, l) = to_cloud_platform(origin).unwrap();
                assert_eq!(from_cloud_platform(p, l), Some(origin));
            }
        }
    }

    #[test]
    fn empty_fields_are_omitted() {
        let seg = Segment::new("svc", SegmentId::from_u64(1), TraceId::from_u128(2), 1.5);
        assert_eq!(
            seg.to_json(),
            r#"{"name":"svc","id":"0000000000000001","trace_id":"1-00000000-000000000000000000000002","start_time":1.5}"#
        );
    }

    #[test]
    fn time_keeps_microseconds() {
        let t = UNIX_EPOCH + std::time::Duration::from_nanos(1_700_000_000_123_456_789);
        assert_eq!(epoch_seconds(t), 1_700_000_000.123_456);
        for d in [
            std::time::Duration::from_nanos(1_700_000_000_123_456_789),
            std::time::Duration::new(u64::MAX / 1_000_000, 999_999_999),
            std::time::Duration::new(u64::MAX, 999_999_999),
        ] {
            assert_eq!(micros_f64(d), d.as_micros() as f64, "{d:?}");
        }
        assert_eq!(
            epoch_seconds_from_nanos(1_700_000_000_123_456_789),
            1_700_000_000.123_456
        );
    }

    #[test]
    fn metadata_keys_are_never_duplicated() {
        let mut seg = Segment::default();
        seg.put_metadata("default", "k", AnyValue::Int(1));
        seg.put_metadata("default", "k", AnyValue::Int(2));
        let json = serde_json::to_value(&seg).unwrap();
        assert_eq!(json["metadata"], serde_json::json!({"default": {"k": 2}}));
    }

    #[test]
    fn sampling_rule_name_is_written_like_the_sdks() {
        let seg = Segment {
            aws: Some(Box::new(Aws {
                xray: Some(XraySdk {
                    sampling_rule_name: Some("checkout-rule".into()),
                    ..XraySdk::default()
                }),
                ..Aws::default()
            })),
            ..Segment::default()
        };
        let json = serde_json::to_value(&seg).unwrap();
        assert_eq!(
            json["aws"]["xray"],
            serde_json::json!({"sampling_rule_name": "checkout-rule"})
        );
        let back: Segment<'_> = serde_json::from_value(json).unwrap();
        assert_eq!(back, seg);
    }

    #[test]
    fn cause_id_and_details_round_trip() {
        let id = Cause::ExceptionId(SegmentId::from_u64(7));
        let text = serde_json::to_string(&id).unwrap();
        assert_eq!(text, r#""0000000000000007""#);
        assert_eq!(serde_json::from_str::<Cause<'_>>(&text).unwrap(), id);
    }
}
