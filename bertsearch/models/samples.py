"""Fixed texts the faithfulness checks encode: queries and passages of several kinds and lengths, so that a form
or a precision that drifts from the fp32 model on some kind of text shows it. Never tuned to one collection."""

from __future__ import annotations

QUERIES = (
    "vitamin d",
    "does vitamin D supplementation prevent bone fractures in the elderly?",
    "BRCA1 mutation carriers: risk of ovarian cancer before age 70",
    "Ünïcödé, naïve café — 東京 and Москва; emoji 🙂 too",
    "IL-6 levels > 10 pg/mL in 3 of 12 patients (25%)",
    "what is the boiling point of water at an altitude of 2,000 metres",
    "a text longer than the model reads, so that truncation is checked as well " * 40,
)

PASSAGES = (
    "Vitamin D and calcium supplements reduced hip fractures in elderly women living in nursing homes.",
    "The boiling point of water falls by about one degree Celsius for every 300 metres of altitude.",
    "Photosynthesis converts light energy into chemical energy: chlorophyll absorbs red and blue light, water is "
    "split, oxygen is released, and carbon dioxide is fixed into sugars by the Calvin cycle.",
    "The court held that the contract was void because one party lacked the capacity to consent at the time of "
    "signing, and ordered restitution of the payments already made.",
    "def merge(left, right):\n    result = []\n    while left and right:\n        result.append((left if left[0] <= "
    "right[0] else right).pop(0))\n    return result + left + right",
    "Preheat the oven to 180 °C. Cream the butter and sugar, beat in the eggs one at a time, fold in the flour and "
    "bake for 25 minutes until a skewer comes out clean.",
    "Der Zug nach München fährt heute wegen Bauarbeiten zwanzig Minuten später ab; Reisende nach Salzburg steigen "
    "in Rosenheim um.",
    "Les chercheurs ont observé une baisse de 12 % de la biodiversité des insectes pollinisateurs entre 1990 et 2020.",
    "东京是日本的首都，也是世界上人口最多的都市圈之一。",
    "Q3 revenue rose 8.4% year over year to $2.31B, while operating margin narrowed to 17% on higher logistics costs.",
    "Patients randomised to the intervention arm (n = 412) had a lower 30-day readmission rate (11.2% vs 14.9%; "
    "hazard ratio 0.74, 95% CI 0.58-0.95).",
    "The transformer architecture replaces recurrence with self-attention, letting every token attend to every other "
    "token in a single layer; positional encodings supply word order.",
    "Error: connection refused (ECONNREFUSED) while connecting to 127.0.0.1:9200 — is the service running?",
    "The migratory route of the Arctic tern spans from the Arctic to the Antarctic and back each year, the longest "
    "known migration of any animal, some 70,000 kilometres.",
    "In 1815 the eruption of Mount Tambora ejected so much ash into the stratosphere that 1816 became known as the "
    "year without a summer across Europe and North America.",
    "compact memories have flexible capacities a digital data storage system with capacity up to bits and random "
    "and or sequential access is described",
    "A short one.",
    "Abstract. " + "Measurements of the dielectric constant of liquids at microwave frequencies were made with a "
    "resonant cavity; the results agree with the Debye theory within experimental error. " * 6,
    "Title: Annual report. The board met four times. Attendance was complete. Minutes were approved without "
    "amendment. The treasurer reported a surplus. The auditors raised no concerns. The next meeting is in May.",
    "Kinase inhibitors targeting the EGFR T790M mutation restored sensitivity in non-small-cell lung cancer cell "
    "lines resistant to first-generation tyrosine kinase inhibitors.",
)
