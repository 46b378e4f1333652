"""The read path's answers, built once per release: body, ETag, headers and each format."""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from server.domain.formats import render
from server.published import PerRelease, PublishedConfigs
from server.records import Release


@dataclass(eq=False)
class ConfigAnswer:
    """One release as `GET …/config` answers it; callers copy the headers, never change them."""

    release: Release
    etag: str
    json_body: bytes
    headers: dict[str, str]
    json_headers: dict[str, str]
    rendered: dict[str, tuple[bytes, str]] = field(default_factory=dict)

    @classmethod
    def of(cls, release: Release) -> ConfigAnswer:
        """Serialise a release and its headers."""
        body = {
            "app": release.app,
            "env": release.env,
            "version": release.version,
            "checksum": release.checksum,
            "items": release.items,
        }
        etag = f'"{release.checksum}"'
        headers = {"ETag": etag, "X-Config-Version": str(release.version)}
        json_headers = {**headers, "Content-Type": "application/json"}
        return cls(release, etag, orjson.dumps(body), headers, json_headers)

    def render(self, fmt: str) -> tuple[bytes, str]:
        """The release in a non-JSON format: (body, content type), rendered on first use."""
        cached = self.rendered.get(fmt)
        if cached is None:
            release = self.release
            cached = render(
                fmt, release.app, release.env, release.version, release.checksum, release.items
            )
            self.rendered[fmt] = cached
        return cached


class ConfigAnswers:
    """The answer of each env's latest release, built on first read, dropped when replaced."""

    def __init__(self, published: PublishedConfigs) -> None:
        self.published = published
        self._answers = PerRelease(ConfigAnswer.of)
        published.add_listener(self._release_applied)
        published.add_removal_listener(self._answers.forget_app)
        published.add_env_removal_listener(lambda app, env: self._answers.forget((app, env)))

    def current(self, app: str, env: str) -> ConfigAnswer | None:
        """The answer for an env's latest release, or None before its first."""
        release = self.published.get(app, env)
        return None if release is None else self._answers.of(release)

    def of(self, release: Release) -> ConfigAnswer:
        """The answer for release (held until a newer release of its env replaces it)."""
        return self._answers.of(release)

    def _release_applied(self, release: Release) -> None:
        # Built again on the next read: an env nobody reads over HTTP holds no bytes here.
        self._answers.forget((release.app, release.env))
