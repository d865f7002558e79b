"""The console behind a reverse proxy that publishes the cloud under /cloud and strips it."""
import types

import pytest

from tests.support.prefix_proxy import cloud_behind_proxy

from .test_console import launch, wait_state

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group('browser-prefix')]

PREFIX = '/cloud'


@pytest.fixture(scope='module')
def console_cloud(tmp_path_factory):
    """Replaces the shared cloud: the same server, reached only through the proxy."""
    with cloud_behind_proxy(tmp_path_factory.mktemp('prefix-console'), ['alice'], PREFIX) as (live, proxy):
        yield types.SimpleNamespace(endpoint=proxy.url, users=live.users, image_id=live.image_id, proxy=proxy,
                                    client=live.client)


def test_the_console_signs_in_and_launches_behind_a_path_prefix(console):
    assert console.driver.current_url.startswith(console.live.proxy.url + '/console/')
    console.sign_in('alice')
    console.signed_in()
    [instance_id] = launch(console, 1)
    wait_state(console, instance_id, 'running')
    # Everything the page fetched and signed went through the proxy, under the prefix.
    methods = {method for method, _ in console.live.proxy.forwarded}
    assert {'GET', 'POST'} <= methods
    assert ('POST', '/') in console.live.proxy.forwarded
    assert ('GET', '/console/js/main.js') in console.live.proxy.forwarded
