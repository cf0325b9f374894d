import pytest
from tests.browser.conftest import login

@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_smoke(page, user):
    login(page)
    page.wait_for_timeout(1000)
    page.screenshot(path="/tmp/s1.png")
    print(page.url, page.title()); print(page.content()[-1500:])
    print(page.console_errors)
