"""The console page as the tests use it: sign in, go to a page, read the instances table."""
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import WebDriverWait

WAIT_SECONDS = 30


class Console:
    def __init__(self, driver, live, screenshots):
        self.driver = driver
        self.live = live
        self.screenshots = screenshots

    @property
    def url(self):
        return f'{self.live.endpoint}/console/'

    def open(self):
        self.driver.get(self.url)
        self.wait_for(lambda d: d.find_element(By.ID, 'sign-in').is_displayed())

    def sign_in(self, user, secret=None):
        credentials = self.live.users[user]
        form = self.driver.find_element(By.ID, 'sign-in')
        form.find_element(By.NAME, 'access_key_id').send_keys(credentials['access_key_id'])
        form.find_element(By.NAME, 'secret').send_keys(secret or credentials['secret_access_key'])
        form.find_element(By.CSS_SELECTOR, 'button[type=submit]').click()

    def signed_in(self):
        self.wait_for(lambda d: d.find_element(By.ID, 'page-instances').is_displayed())
        assert not self.find('#sign-in').is_displayed()

    def sign_out(self):
        button = self.driver.find_element(By.ID, 'sign-out')
        if button.is_displayed():
            button.click()

    def go(self, page):
        self.driver.find_element(By.CSS_SELECTOR, f'nav [data-page="{page}"]').click()
        self.wait_for(lambda d: d.find_element(By.ID, f'page-{page}').is_displayed())

    def find(self, css):
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def find_all(self, css):
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def status(self):
        return self.find('#status').text

    def row(self, instance_id):
        return self.find(f'#instances tr[data-id="{instance_id}"]')

    def states(self):
        return {row.get_attribute('data-id'): row.find_elements(By.TAG_NAME, 'td')[1].text
                for row in self.find_all('#instances tbody tr')}

    def confirm(self):
        self.wait_for(lambda d: d.find_element(By.ID, 'confirm-yes').is_displayed())
        self.find('#confirm-yes').click()

    def alert_present(self):
        try:
            self.driver.switch_to.alert
        except NoAlertPresentException:
            return False
        return True

    def wait_for(self, condition, timeout=WAIT_SECONDS):
        return WebDriverWait(self.driver, timeout).until(condition)

    def wait_visible(self, css):
        return self.wait_for(ready.visibility_of_element_located((By.CSS_SELECTOR, css)))

    def script_problems(self):
        """Script errors and policy violations the browser logged since the last call (refused
        requests, which some tests make on purpose, are only network noise)."""
        return [entry['message'] for entry in self.driver.get_log('browser')
                if entry['level'] == 'SEVERE' and 'Failed to load resource' not in entry['message']]

    def screenshot(self, name):
        path = self.screenshots / f'{name}.png'
        self.driver.save_screenshot(str(path))
        return path
