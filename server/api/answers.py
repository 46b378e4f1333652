"""The read path's answers, built once per release: body, ETag, headers and each format.

A release with secrets has two: with the secret values in clear (read tokens, publishers) and
with them null (viewers and editors reading published config); each is built on first use.
"""

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
    reveal: bool
    etag: str
    json_body: bytes
    headers: dict[str, str]
    json_headers: dict[str, str]
    rendered: dict[str, tuple[bytes, str]] = field(default_factory=dict)

    @classmethod
    def of(cls, release: Release, reveal: bool) -> ConfigAnswer:
        """Serialise a release (secret values null unless reveal) and its headers."""
        body = {
            "app": release.app,
            "env": release.env,
            "version": release.version,
            "checksum": release.checksum,
            "items": release.shown_items(reveal=reveal),
        }
        etag = f'"{release.checksum}"'
        headers = {"ETag": etag, "X-Config-Version": str(release.version)}
        json_headers = {**headers, "Content-Type": "application/json"}
        return cls(release, reveal, etag, orjson.dumps(body), headers, json_headers)

    def render(self, fmt: str) -> tuple[bytes, str]:
        """The release in a non-JSON format: (body, content type), rendered on first use."""
        cached = self.rendered.get(fmt)
        if cached is None:
            release = self.release
            cached = render(
                fmt,
                release.app,
                release.env,
                release.version,
                release.checksum,
                self._rendered_items(),
            )
            self.rendered[fmt] = cached
        return cached

    def _rendered_items(self) -> dict[str, str]:
        # The text formats have no null: a secret a reader may not see is left out.
        release = self.release
        if self.reveal or not release.secret_keys:
            return release.items
        return {k: v for k, v in release.items.items() if k not in release.secret_keys}


@dataclass(eq=False)
class _Variants:
    """The clear and the masked answer of one release, each built on first use."""

    release: Release
    built: dict[bool, ConfigAnswer] = field(default_factory=dict)

    def get(self, reveal: bool) -> ConfigAnswer:
        reveal = reveal or not self.release.secret_keys
        answer = self.built.get(reveal)
        if answer is None:
            answer = self.built[reveal] = ConfigAnswer.of(self.release, reveal)
        return answer


class ConfigAnswers:
    """The answer of each env's latest release, built on first read, dropped when replaced."""

    def __init__(self, published: PublishedConfigs) -> None:
        self.published = published
        self._answers = PerRelease(_Variants)
        published.add_listener(self._release_applied)
        published.add_removal_listener(self._answers.forget_app)
        published.add_env_removal_listener(lambda app, env: self._answers.forget((app, env)))

    def current(self, app: str, env: str, reveal: bool) -> ConfigAnswer | None:
        """The answer for an env's latest release, or None before its first; secret values
        null unless reveal."""
        release = self.published.get(app, env)
        return None if release is None else self._answers.of(release).get(reveal)

    def of(self, release: Release, reveal: bool) -> ConfigAnswer:
        """The answer for release (held until a newer release of its env replaces it)."""
        return self._answers.of(release).get(reveal)

    def _release_applied(self, release: Release) -> None:
        # Built again on the next read: an env nobody reads over HTTP holds no bytes here.
        self._answers.forget((release.app, release.env))
