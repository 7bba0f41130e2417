//! Resource detection for Lambda, ECS (incl. Fargate), EKS, Elastic Beanstalk and EC2.
//!
//! A detector runs only when local evidence (environment variables, files) says the
//! process is on its platform, so nothing is sent to the instance metadata address off
//! AWS; the detectors run on a thread of their own and the start waits for them at most a
//! deadline, keeping what arrived by then.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use opentelemetry::KeyValue;

/// The default deadline for resource detection.
pub const DEFAULT_DETECTION_TIMEOUT: Duration = Duration::from_millis(1500);

/// Where the evidence lives; tests point these at temporary files.
#[derive(Debug, Clone)]
pub(crate) struct Paths {
    pub k8s_namespace: PathBuf,
    pub k8s_token: PathBuf,
    pub beanstalk_conf: PathBuf,
    pub dmi_dir: PathBuf,
    pub hypervisor_uuid: PathBuf,
}

impl Default for Paths {
    fn default() -> Self {
        Paths {
            k8s_namespace: "/var/run/secrets/kubernetes.io/serviceaccount/namespace".into(),
            k8s_token: "/var/run/secrets/kubernetes.io/serviceaccount/token".into(),
            beanstalk_conf: "/var/elasticbeanstalk/xray/environment.conf".into(),
            dmi_dir: "/sys/class/dmi/id".into(),
            hypervisor_uuid: "/sys/hypervisor/uuid".into(),
        }
    }
}

/// The platforms the local evidence points at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Evidence {
    pub lambda: bool,
    pub ecs: bool,
    pub eks: bool,
    pub beanstalk: Option<PathBuf>,
    pub ec2: bool,
}

impl Evidence {
    /// Looks at environment variables (through `var`) and files only.
    pub(crate) fn gather(var: impl Fn(&str) -> Option<String>, paths: &Paths) -> Evidence {
        let set = |name: &str| var(name).is_some_and(|v| !v.trim().is_empty());
        let ec2 = is_ec2(paths);
        let lambda = set("AWS_LAMBDA_FUNCTION_NAME");
        let ecs = !lambda && set("ECS_CONTAINER_METADATA_URI_V4");
        // Kubernetes anywhere has the service-account files; EKS also has a tie to AWS:
        // an EC2 node, or the variables EKS (Pod Identity, IRSA, the CloudWatch agent's
        // convention) puts into pods.
        let k8s = paths.k8s_namespace.is_file() && paths.k8s_token.is_file();
        let aws_tie = ec2
            || [
                "AWS_CLUSTER_NAME",
                "AWS_ROLE_ARN",
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "AWS_REGION",
                "AWS_DEFAULT_REGION",
            ]
            .iter()
            .any(|n| set(n));
        let eks = !lambda && !ecs && k8s && aws_tie;
        let beanstalk =
            (!lambda && paths.beanstalk_conf.is_file()).then(|| paths.beanstalk_conf.clone());
        Evidence {
            lambda,
            ecs,
            eks,
            beanstalk,
            ec2: ec2 && !lambda,
        }
    }

    /// Whether any detector would run.
    pub(crate) fn any(&self) -> bool {
        self.lambda || self.ecs || self.eks || self.beanstalk.is_some() || self.ec2
    }
}

/// Whether the machine says it is an EC2 instance: DMI vendor `Amazon EC2` (Nitro), or a
/// Xen hypervisor UUID starting with `ec2` (older instance types).
fn is_ec2(paths: &Paths) -> bool {
    let read = |p: &Path| std::fs::read_to_string(p).ok();
    let dmi = ["sys_vendor", "board_vendor", "bios_vendor"]
        .iter()
        .filter_map(|f| read(&paths.dmi_dir.join(f)))
        .any(|v| v.trim() == "Amazon EC2");
    dmi || read(&paths.hypervisor_uuid)
        .is_some_and(|u| u.trim().to_ascii_lowercase().starts_with("ec2"))
}

/// Elastic Beanstalk's `environment.conf` as resource attributes (the OpenTelemetry
/// contrib convention: `service.namespace` = environment, `service.version` = version
/// label, `service.instance.id` = deployment id).
pub(crate) fn beanstalk_attributes(path: &Path) -> Vec<KeyValue> {
    let Some(conf) = std::fs::read_to_string(path)
        .ok()
        .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
    else {
        return Vec::new();
    };
    let text = |key: &str| match conf.get(key) {
        Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let mut out = vec![
        KeyValue::new("cloud.provider", "aws"),
        KeyValue::new("cloud.platform", "aws_elastic_beanstalk"),
    ];
    for (key, attr) in [
        ("environment_name", "service.namespace"),
        ("version_label", "service.version"),
        ("deployment_id", "service.instance.id"),
    ] {
        if let Some(v) = text(key) {
            out.push(KeyValue::new(attr, v));
        }
    }
    out
}

/// Runs the detectors the evidence names (EC2 first, so the more specific platform's
/// `cloud.platform` wins), each result sent as soon as it is ready.
fn run_detectors(evidence: Evidence, tx: mpsc::Sender<Vec<KeyValue>>) {
    #[allow(unused_imports)]
    use opentelemetry_sdk::resource::ResourceDetector;
    #[allow(unused)]
    let send = |resource: opentelemetry_sdk::Resource| {
        let attrs = resource
            .iter()
            .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
            .collect();
        let _ = tx.send(attrs);
    };
    #[cfg(feature = "detect-ec2")]
    if evidence.ec2 && !evidence.ecs && !evidence.eks {
        send(opentelemetry_aws::detector::Ec2ResourceDetector.detect());
    }
    if let Some(path) = &evidence.beanstalk {
        let _ = tx.send(beanstalk_attributes(path));
    }
    #[cfg(feature = "detect-ecs")]
    if evidence.ecs {
        send(opentelemetry_aws::detector::EcsResourceDetector.detect());
    }
    #[cfg(feature = "detect-eks")]
    if evidence.eks {
        send(opentelemetry_aws::detector::EksResourceDetector.detect());
    }
    #[cfg(feature = "detect-lambda")]
    if evidence.lambda {
        send(opentelemetry_aws::detector::LambdaResourceDetector.detect());
    }
}

/// The attributes detected within `timeout` (later ones override earlier ones when
/// merged in order), and whether the deadline cut detection short.
pub(crate) fn detect(evidence: Evidence, timeout: Duration) -> (Vec<KeyValue>, bool) {
    if !evidence.any() {
        return (Vec::new(), false);
    }
    collect_within(timeout, move |tx| run_detectors(evidence, tx))
}

/// Runs `work` on a thread of its own and collects what it sends until it finishes or
/// `timeout` passes (the thread is left to finish on its own then).
fn collect_within(
    timeout: Duration,
    work: impl FnOnce(mpsc::Sender<Vec<KeyValue>>) + Send + 'static,
) -> (Vec<KeyValue>, bool) {
    let (tx, rx) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("xray-resource-detection".into())
        .spawn(move || {
            // The detectors' own HTTP calls must not become spans.
            let _suppressed = opentelemetry::Context::enter_telemetry_suppressed_scope();
            work(tx)
        });
    if spawned.is_err() {
        return (Vec::new(), false);
    }
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(attrs) => out.extend(attrs),
            Err(mpsc::RecvTimeoutError::Disconnected) => return (out, false),
            Err(mpsc::RecvTimeoutError::Timeout) => return (out, true),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xray_testkit::vars;

    /// A temporary folder removed on drop.
    struct TempDir(xray_testkit::TempDir);

    impl TempDir {
        fn new(tag: &str) -> Self {
            TempDir(xray_testkit::temp_dir(&format!("tracing-xray-{tag}")))
        }

        fn paths(&self) -> Paths {
            Paths {
                k8s_namespace: self.0.path().join("k8s/namespace"),
                k8s_token: self.0.path().join("k8s/token"),
                beanstalk_conf: self.0.path().join("environment.conf"),
                dmi_dir: self.0.path().join("dmi"),
                hypervisor_uuid: self.0.path().join("hypervisor_uuid"),
            }
        }

        fn write(&self, path: &Path, text: &str) {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
    }

    #[test]
    fn no_evidence_runs_nothing() {
        let dir = TempDir::new("none");
        let e = Evidence::gather(vars(&[]), &dir.paths());
        assert_eq!(e, Evidence::default());
        assert!(!e.any());
        let started = Instant::now();
        assert_eq!(detect(e, Duration::from_secs(5)), (Vec::new(), false));
        assert!(started.elapsed() < Duration::from_millis(100));
    }

    #[test]
    fn lambda_from_its_environment() {
        let dir = TempDir::new("lambda");
        // Lambda wins over everything else it might look like.
        dir.write(&dir.paths().dmi_dir.join("sys_vendor"), "Amazon EC2\n");
        let e = Evidence::gather(
            vars(&[
                ("AWS_LAMBDA_FUNCTION_NAME", "orders"),
                ("ECS_CONTAINER_METADATA_URI_V4", "http://127.0.0.1:1"),
            ]),
            &dir.paths(),
        );
        assert_eq!(
            e,
            Evidence {
                lambda: true,
                ..Evidence::default()
            }
        );
    }

    #[test]
    fn ecs_and_fargate_from_the_metadata_variable() {
        let dir = TempDir::new("ecs");
        let e = Evidence::gather(
            vars(&[(
                "ECS_CONTAINER_METADATA_URI_V4",
                "http://169.254.170.2/v4/abc",
            )]),
            &dir.paths(),
        );
        assert!(e.ecs && !e.eks && !e.ec2 && !e.lambda);
        let e = Evidence::gather(
            vars(&[("ECS_CONTAINER_METADATA_URI_V4", " ")]),
            &dir.paths(),
        );
        assert!(!e.any());
    }

    #[test]
    fn eks_needs_service_account_files_and_a_tie_to_aws() {
        let dir = TempDir::new("eks");
        let p = dir.paths();
        dir.write(&p.k8s_namespace, "default");
        assert!(!Evidence::gather(vars(&[("AWS_REGION", "eu-west-1")]), &p).eks);
        dir.write(&p.k8s_token, "token");
        // Kubernetes elsewhere: no detector, no metadata call.
        assert!(!Evidence::gather(vars(&[]), &p).any());
        assert!(Evidence::gather(vars(&[("AWS_REGION", "eu-west-1")]), &p).eks);
        assert!(Evidence::gather(vars(&[("AWS_ROLE_ARN", "arn:aws:iam::1:role/r")]), &p).eks);
        dir.write(&p.dmi_dir.join("board_vendor"), "Amazon EC2");
        let e = Evidence::gather(vars(&[]), &p);
        assert!(e.eks && e.ec2);
    }

    #[test]
    fn ec2_from_dmi_or_xen_uuid() {
        let dir = TempDir::new("ec2");
        let p = dir.paths();
        dir.write(&p.dmi_dir.join("sys_vendor"), "QEMU\n");
        assert!(!Evidence::gather(vars(&[]), &p).ec2);
        dir.write(&p.dmi_dir.join("sys_vendor"), "Amazon EC2\n");
        assert!(Evidence::gather(vars(&[]), &p).ec2);
        let dir = TempDir::new("xen");
        let p = dir.paths();
        dir.write(&p.hypervisor_uuid, "EC2E1916-9099-7CAF-FD21-012345ABCDEF\n");
        assert!(Evidence::gather(vars(&[]), &p).ec2);
    }

    #[test]
    fn beanstalk_from_its_configuration_file() {
        let dir = TempDir::new("eb");
        let p = dir.paths();
        dir.write(
            &p.beanstalk_conf,
            r#"{"deployment_id":23,"version_label":"app-v2","environment_name":"prod-env"}"#,
        );
        let e = Evidence::gather(vars(&[]), &p);
        assert_eq!(e.beanstalk.as_deref(), Some(p.beanstalk_conf.as_path()));
        // No network involved: the attributes come from the file, within the deadline.
        let (attrs, cut) = detect(e, Duration::from_secs(5));
        assert!(!cut);
        let get = |k: &str| {
            attrs
                .iter()
                .find(|kv| kv.key.as_str() == k)
                .map(|kv| kv.value.to_string())
        };
        assert_eq!(
            get("cloud.platform").as_deref(),
            Some("aws_elastic_beanstalk")
        );
        assert_eq!(get("service.namespace").as_deref(), Some("prod-env"));
        assert_eq!(get("service.version").as_deref(), Some("app-v2"));
        assert_eq!(get("service.instance.id").as_deref(), Some("23"));
        // A broken file gives nothing rather than a half platform.
        dir.write(&p.beanstalk_conf, "{not json");
        assert!(beanstalk_attributes(&p.beanstalk_conf).is_empty());
    }

    #[test]
    fn deadline_keeps_what_arrived_and_does_not_wait_for_the_rest() {
        let started = Instant::now();
        let (attrs, cut) = collect_within(Duration::from_millis(200), |tx| {
            tx.send(vec![KeyValue::new("cloud.platform", "aws_ec2")])
                .unwrap();
            std::thread::sleep(Duration::from_secs(3));
            let _ = tx.send(vec![KeyValue::new("late", true)]);
        });
        assert!(cut);
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(attrs, [KeyValue::new("cloud.platform", "aws_ec2")]);
    }

    #[cfg(feature = "detect-lambda")]
    #[test]
    fn lambda_detector_runs_within_the_deadline() {
        // The Lambda detector reads the process environment; without
        // AWS_LAMBDA_FUNCTION_NAME in it, it returns nothing, and quickly.
        let evidence = Evidence {
            lambda: true,
            ..Evidence::default()
        };
        let started = Instant::now();
        let (_, cut) = detect(evidence, Duration::from_secs(5));
        assert!(!cut);
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
