//! Detaching documents from the data they borrow: every `Cow` made owned, field by field.
//!
//! Each struct is destructured without `..`, so a new field fails to compile here instead
//! of being dropped silently.

use std::borrow::Cow;

use crate::Namespace;
use crate::document::*;

impl Segment<'_> {
    /// Converts every borrowed string into an owned one, detaching the document from the
    /// data it was built from. Every value is kept as it is (non-finite times included).
    ///
    /// # Examples
    ///
    /// ```
    /// use xray_model::{Segment, SegmentId, TraceId};
    ///
    /// let name = String::from("checkout");
    /// let trace = TraceId::from_u128(1);
    /// let doc: Segment<'static> = Segment::new(name.as_str(), SegmentId::from_u64(1), trace, 1.0)
    ///     .into_owned();
    /// drop(name);
    /// assert_eq!(doc.name, "checkout");
    /// ```
    pub fn into_owned(self) -> Segment<'static> {
        IntoOwned::owned(self)
    }
}

/// A value with every borrowed string made owned.
pub(crate) trait IntoOwned {
    /// The same type, borrowing nothing.
    type Owned;
    /// Converts, moving what is already owned.
    fn owned(self) -> Self::Owned;
}

impl IntoOwned for Cow<'_, str> {
    type Owned = Cow<'static, str>;
    fn owned(self) -> Cow<'static, str> {
        Cow::Owned(Cow::into_owned(self))
    }
}

impl<T: IntoOwned> IntoOwned for Option<T> {
    type Owned = Option<T::Owned>;
    fn owned(self) -> Self::Owned {
        self.map(T::owned)
    }
}

impl<T: IntoOwned> IntoOwned for Vec<T> {
    type Owned = Vec<T::Owned>;
    fn owned(self) -> Self::Owned {
        self.into_iter().map(T::owned).collect()
    }
}

impl<T: IntoOwned> IntoOwned for Box<T> {
    type Owned = Box<T::Owned>;
    fn owned(self) -> Self::Owned {
        Box::new((*self).owned())
    }
}

impl<V: IntoOwned> IntoOwned for Fields<'_, V> {
    type Owned = Fields<'static, V::Owned>;
    fn owned(self) -> Self::Owned {
        Fields(
            self.0
                .into_iter()
                .map(|(k, v)| (k.owned(), v.owned()))
                .collect(),
        )
    }
}

impl IntoOwned for Namespace<'_> {
    type Owned = Namespace<'static>;
    fn owned(self) -> Self::Owned {
        Namespace::from(self.into_fields().owned())
    }
}

impl IntoOwned for AnnotationValue<'_> {
    type Owned = AnnotationValue<'static>;
    fn owned(self) -> Self::Owned {
        match self {
            AnnotationValue::Bool(b) => AnnotationValue::Bool(b),
            AnnotationValue::Int(i) => AnnotationValue::Int(i),
            AnnotationValue::Float(f) => AnnotationValue::Float(f),
            AnnotationValue::Str(s) => AnnotationValue::Str(s.owned()),
        }
    }
}

impl IntoOwned for AnyValue<'_> {
    type Owned = AnyValue<'static>;
    fn owned(self) -> Self::Owned {
        match self {
            AnyValue::Null => AnyValue::Null,
            AnyValue::Bool(b) => AnyValue::Bool(b),
            AnyValue::Int(i) => AnyValue::Int(i),
            AnyValue::Float(f) => AnyValue::Float(f),
            AnyValue::Str(s) => AnyValue::Str(s.owned()),
            AnyValue::Array(a) => AnyValue::Array(a.owned()),
            AnyValue::Object(o) => AnyValue::Object(o.owned()),
        }
    }
}

impl IntoOwned for Segment<'_> {
    type Owned = Segment<'static>;
    fn owned(self) -> Self::Owned {
        let Segment {
            name,
            id,
            trace_id,
            kind,
            parent_id,
            start_time,
            end_time,
            in_progress,
            namespace,
            origin,
            user,
            resource_arn,
            traced,
            service,
            http,
            aws,
            sql,
            error,
            throttle,
            fault,
            cause,
            annotations,
            metadata,
            subsegments,
            precursor_ids,
            links,
        } = self;
        Segment {
            name: name.owned(),
            id,
            trace_id,
            kind: kind.owned(),
            parent_id,
            start_time,
            end_time,
            in_progress,
            namespace: namespace.owned(),
            origin: origin.owned(),
            user: user.owned(),
            resource_arn: resource_arn.owned(),
            traced,
            service: service.owned(),
            http: http.owned(),
            aws: aws.owned(),
            sql: sql.owned(),
            error,
            throttle,
            fault,
            cause: cause.owned(),
            annotations: annotations.owned(),
            metadata: metadata.owned(),
            subsegments: subsegments.owned(),
            precursor_ids,
            links: links.owned(),
        }
    }
}

impl IntoOwned for Service<'_> {
    type Owned = Service<'static>;
    fn owned(self) -> Self::Owned {
        let Service {
            version,
            runtime,
            runtime_version,
        } = self;
        Service {
            version: version.owned(),
            runtime: runtime.owned(),
            runtime_version: runtime_version.owned(),
        }
    }
}

impl IntoOwned for Http<'_> {
    type Owned = Http<'static>;
    fn owned(self) -> Self::Owned {
        let Http { request, response } = self;
        Http {
            request: request.owned(),
            response,
        }
    }
}

impl IntoOwned for HttpRequest<'_> {
    type Owned = HttpRequest<'static>;
    fn owned(self) -> Self::Owned {
        let HttpRequest {
            method,
            url,
            user_agent,
            client_ip,
            x_forwarded_for,
            traced,
        } = self;
        HttpRequest {
            method: method.owned(),
            url: url.owned(),
            user_agent: user_agent.owned(),
            client_ip: client_ip.owned(),
            x_forwarded_for,
            traced,
        }
    }
}

impl IntoOwned for Aws<'_> {
    type Owned = Aws<'static>;
    fn owned(self) -> Self::Owned {
        let Aws {
            account_id,
            operation,
            region,
            request_id,
            queue_url,
            table_name,
            table_names,
            retries,
            ec2,
            ecs,
            eks,
            elastic_beanstalk,
            lambda,
            xray,
            cloudwatch_logs,
        } = self;
        Aws {
            account_id: account_id.owned(),
            operation: operation.owned(),
            region: region.owned(),
            request_id: request_id.owned(),
            queue_url: queue_url.owned(),
            table_name: table_name.owned(),
            table_names: table_names.owned(),
            retries,
            ec2: ec2.owned(),
            ecs: ecs.owned(),
            eks: eks.owned(),
            elastic_beanstalk: elastic_beanstalk.owned(),
            lambda: lambda.owned(),
            xray: xray.owned(),
            cloudwatch_logs: cloudwatch_logs.owned(),
        }
    }
}

impl IntoOwned for Ec2<'_> {
    type Owned = Ec2<'static>;
    fn owned(self) -> Self::Owned {
        let Ec2 {
            instance_id,
            availability_zone,
            instance_size,
            ami_id,
        } = self;
        Ec2 {
            instance_id: instance_id.owned(),
            availability_zone: availability_zone.owned(),
            instance_size: instance_size.owned(),
            ami_id: ami_id.owned(),
        }
    }
}

impl IntoOwned for Ecs<'_> {
    type Owned = Ecs<'static>;
    fn owned(self) -> Self::Owned {
        let Ecs {
            container,
            container_id,
            task_arn,
            task_family,
            cluster_arn,
            launch_type,
        } = self;
        Ecs {
            container: container.owned(),
            container_id: container_id.owned(),
            task_arn: task_arn.owned(),
            task_family: task_family.owned(),
            cluster_arn: cluster_arn.owned(),
            launch_type: launch_type.owned(),
        }
    }
}

impl IntoOwned for Eks<'_> {
    type Owned = Eks<'static>;
    fn owned(self) -> Self::Owned {
        let Eks {
            cluster_name,
            pod,
            container_id,
        } = self;
        Eks {
            cluster_name: cluster_name.owned(),
            pod: pod.owned(),
            container_id: container_id.owned(),
        }
    }
}

impl IntoOwned for ElasticBeanstalk<'_> {
    type Owned = ElasticBeanstalk<'static>;
    fn owned(self) -> Self::Owned {
        let ElasticBeanstalk {
            environment_name,
            version_label,
            deployment_id,
        } = self;
        ElasticBeanstalk {
            environment_name: environment_name.owned(),
            version_label: version_label.owned(),
            deployment_id,
        }
    }
}

impl IntoOwned for Lambda<'_> {
    type Owned = Lambda<'static>;
    fn owned(self) -> Self::Owned {
        let Lambda {
            function_name,
            function_version,
        } = self;
        Lambda {
            function_name: function_name.owned(),
            function_version: function_version.owned(),
        }
    }
}

impl IntoOwned for XraySdk<'_> {
    type Owned = XraySdk<'static>;
    fn owned(self) -> Self::Owned {
        let XraySdk {
            sdk,
            sdk_version,
            auto_instrumentation,
            sampling_rule_name,
        } = self;
        XraySdk {
            sdk: sdk.owned(),
            sdk_version: sdk_version.owned(),
            auto_instrumentation,
            sampling_rule_name: sampling_rule_name.owned(),
        }
    }
}

impl IntoOwned for CloudWatchLogs<'_> {
    type Owned = CloudWatchLogs<'static>;
    fn owned(self) -> Self::Owned {
        let CloudWatchLogs { log_group, arn } = self;
        CloudWatchLogs {
            log_group: log_group.owned(),
            arn: arn.owned(),
        }
    }
}

impl IntoOwned for Sql<'_> {
    type Owned = Sql<'static>;
    fn owned(self) -> Self::Owned {
        let Sql {
            url,
            connection_string,
            sanitized_query,
            database_type,
            database_version,
            driver_version,
            user,
            preparation,
        } = self;
        Sql {
            url: url.owned(),
            connection_string: connection_string.owned(),
            sanitized_query: sanitized_query.owned(),
            database_type: database_type.owned(),
            database_version: database_version.owned(),
            driver_version: driver_version.owned(),
            user: user.owned(),
            preparation: preparation.owned(),
        }
    }
}

impl IntoOwned for Cause<'_> {
    type Owned = Cause<'static>;
    fn owned(self) -> Self::Owned {
        match self {
            Cause::ExceptionId(id) => Cause::ExceptionId(id),
            Cause::Details(details) => Cause::Details(details.owned()),
        }
    }
}

impl IntoOwned for CauseDetails<'_> {
    type Owned = CauseDetails<'static>;
    fn owned(self) -> Self::Owned {
        let CauseDetails {
            working_directory,
            paths,
            exceptions,
        } = self;
        CauseDetails {
            working_directory: working_directory.owned(),
            paths: paths.owned(),
            exceptions: exceptions.owned(),
        }
    }
}

impl IntoOwned for Exception<'_> {
    type Owned = Exception<'static>;
    fn owned(self) -> Self::Owned {
        let Exception {
            id,
            message,
            kind,
            remote,
            truncated,
            skipped,
            cause,
            stack,
        } = self;
        Exception {
            id,
            message: message.owned(),
            kind: kind.owned(),
            remote,
            truncated,
            skipped,
            cause,
            stack: stack.owned(),
        }
    }
}

impl IntoOwned for StackFrame<'_> {
    type Owned = StackFrame<'static>;
    fn owned(self) -> Self::Owned {
        let StackFrame { path, line, label } = self;
        StackFrame {
            path: path.owned(),
            line,
            label: label.owned(),
        }
    }
}

impl IntoOwned for Link<'_> {
    type Owned = Link<'static>;
    fn owned(self) -> Self::Owned {
        let Link {
            trace_id,
            id,
            attributes,
        } = self;
        Link {
            trace_id,
            id,
            attributes: attributes.owned(),
        }
    }
}
