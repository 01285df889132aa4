"""Every error a user of the harness can get, in one place.

HarnessError                  base of everything below; the message is meant for a person
├── ConfigError               bad option or parameter value (names the option)
├── ManifestError             a manifest that cannot be read into intent (names file, line, field)
├── StackError                the local stack could not be brought up or torn down
│   ├── TraefikStartError     Traefik did not start or did not get ready (with its last log lines)
│   ├── BackendStartError     an echo backend process did not start
│   └── KubeAPIError          the local Kubernetes API could not start
├── ClusterError              the cluster target could not be set up or cleaned up
│   └── AccessDenied          the preflight found permissions missing (lists every one)
├── TargetUnreachable         the proxy under test does not answer (checked before any measurement)
└── WaitTimeout               a condition was not met before its deadline (says which condition)
"""

from __future__ import annotations


class HarnessError(Exception):
    """Base class: an error whose message is written for the person running the harness."""


class ConfigError(HarnessError):
    """An option or parameter has a value the harness cannot use."""


class ManifestError(HarnessError):
    """A manifest cannot be turned into intent."""


class StackError(HarnessError):
    """The local stack could not be brought up or torn down."""


class TraefikStartError(StackError):
    """Traefik did not start, or did not become ready."""


class BackendStartError(StackError):
    """An echo backend process did not start."""


class KubeAPIError(StackError):
    """The local Kubernetes API could not start."""


class ClusterError(HarnessError):
    """The cluster target could not be set up (backends not ready, no proxy address) or
    cleaned up."""


class AccessDenied(ClusterError):
    """The run's credentials lack permissions it needs; the message lists every one."""


class TargetUnreachable(HarnessError):
    """The proxy under test does not answer."""


class WaitTimeout(HarnessError):
    """A condition was not met before its deadline."""
