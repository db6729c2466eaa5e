"""Failed requests are told in words, never as the exception class that carried them."""

from __future__ import annotations

import logging
import socket

import pytest
import requests

from nitrometer.identity import instance_identity
from nitrometer.neterrors import describe
from tests.support.prometheus import free_port

CLASS_NAMES = ("ConnectionError", "MissingSchema", "NewConnectionError", "MaxRetryError",
               "ReadTimeout", "HTTPConnectionPool", "Error(")


def failure(url: str, **kw) -> BaseException:
    with pytest.raises(requests.RequestException) as caught:
        requests.get(url, **kw)
    return caught.value


def test_refused_connection():
    said = describe(failure(f"http://127.0.0.1:{free_port()}/api"))
    assert said == "connection refused (nothing listens there)"


def test_url_without_a_scheme():
    said = describe(failure("127.0.0.1:9090"))
    assert said == "not a URL (expected http://HOST:PORT or https://...)"


def test_no_answer_in_time():
    with socket.socket() as silent:  # accepts (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        said = describe(failure(f"http://127.0.0.1:{silent.getsockname()[1]}/", timeout=0.5))
    assert said == "no answer in time (timed out)"


def test_the_off_ec2_warning_says_what_happened(caplog, monkeypatch, tmp_path):
    import nitrometer.identity as identity

    monkeypatch.setattr(identity, "_warned_off_ec2", False)
    with caplog.at_level(logging.WARNING, logger="nitrometer"):
        instance_identity(endpoint=f"http://127.0.0.1:{free_port()}", timeout=2,
                          dmi_root=str(tmp_path))
    [warning] = [r.getMessage() for r in caplog.records if "not on EC2" in r.getMessage()]
    assert "connection refused" in warning
    assert not [name for name in CLASS_NAMES if name in warning], warning
