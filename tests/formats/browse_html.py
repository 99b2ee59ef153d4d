"""Opens an HTML report in headless Chromium (Debian's chromium and chromium-driver,
through Selenium), uses it as a reader would, and prints what it saw as one JSON
object:

- `loaded`: the DOM as loaded: title, the number of each element that could run or
  load something (script, img, iframe, object, embed, link), whether an injected
  script ran (`window.__pwned`), the list's rows (cells, verdict, shown), the
  articles' ids, and each article's source lines (number, classes, text);
- `sorted_ascending`: the rows' probabilities after clicking the P(insecure) header;
- `sorted_by_location`, `sorted_by_location_descending`: the rows' locations after one
  and two clicks on the Location header;
- `filtered`: the rows shown after typing FILTER in the filter box, and the counter;
- `suppressed_only`: the rows shown with the verdict filter on `suppressed`;
- `console`: the browser's console messages (a CSP violation would be one);
- `load_ms`: from navigation start to the load event's end.

    python3 browse_html.py REPORT.html FILTER SCREENSHOT.png
"""

import json
import os
import sys

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

ROWS = """
return Array.from(document.querySelectorAll('#list tbody tr')).map(r => ({
  cells: Array.from(r.cells).map(c => c.textContent),
  verdict: r.dataset.verdict,
  shown: !r.hidden,
}));
"""

LOADED = """
const count = s => document.querySelectorAll(s).length;
return {
  title: document.title,
  elements: {script: count('script'), img: count('img'), iframe: count('iframe'),
             object: count('object'), embed: count('embed'), link: count('link'),
             style: count('style')},
  pwned: window.__pwned === undefined ? null : String(window.__pwned),
  articles: Array.from(document.querySelectorAll('article')).map(a => a.id),
  sources: Object.fromEntries(Array.from(document.querySelectorAll('article')).map(a => [a.id,
    Array.from(a.querySelectorAll('span.l')).map(l => ({
      line: Number(l.querySelector('span.n').textContent), classes: l.className,
      text: l.textContent.slice(l.querySelector('span.n').textContent.length)}))])),
  headings: Object.fromEntries(Array.from(document.querySelectorAll('article')).map(a => [a.id,
    a.querySelector('h2').textContent])),
  shown: document.getElementById('shown').textContent,
};
"""


def main():
    report, text, screenshot = sys.argv[1:4]
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("ICD_CHROMIUM", "/usr/bin/chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1400,1000"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(os.environ.get("ICD_CHROMEDRIVER", "/usr/bin/chromedriver"))
    driver = webdriver.Chrome(service=service, options=options)
    try:
        driver.get("file://" + os.path.abspath(report))
        result = {"loaded": driver.execute_script(LOADED)}
        result["load_ms"] = driver.execute_script(
            "const t = performance.getEntriesByType('navigation')[0]; return t.loadEventEnd - t.startTime;")
        result["loaded"]["rows"] = driver.execute_script(ROWS)
        driver.save_screenshot(screenshot)
        button = driver.find_element(By.CSS_SELECTOR, "#list th[data-key=p] button")
        button.click()
        result["sorted_ascending"] = [r["cells"][0] for r in driver.execute_script(ROWS)]
        button.click()
        location = driver.find_element(By.CSS_SELECTOR, "#list th[data-key=location] button")
        location.click()
        result["sorted_by_location"] = [r["cells"][3] for r in driver.execute_script(ROWS)]
        location.click()
        result["sorted_by_location_descending"] = [r["cells"][3] for r in driver.execute_script(ROWS)]
        box = driver.find_element(By.ID, "filter")
        box.send_keys(text)
        result["filtered"] = {
            "rows": [r for r in driver.execute_script(ROWS) if r["shown"]],
            "shown": driver.find_element(By.ID, "shown").text,
            "articles_shown": driver.execute_script(
                "return Array.from(document.querySelectorAll('article')).filter(a => !a.hidden).map(a => a.id);"),
        }
        box.clear()
        box.send_keys(" ")
        Select(driver.find_element(By.ID, "verdict")).select_by_value("suppressed")
        result["suppressed_only"] = [r for r in driver.execute_script(ROWS) if r["shown"]]
        result["console"] = [e["message"] for e in driver.get_log("browser")]
    finally:
        driver.quit()
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
