#!/usr/bin/env python3
"""Generates examples/customers-us.csv: the English demo's customers (fictional
names, +1 numbers in 555-2xxx (fictional; customers.csv uses 555-01xx), each with an order to
confirm). Deterministic: python3 examples/gen_customers_us.py > examples/customers-us.csv"""
import csv, random, sys

random.seed(20261125)
first = ["James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David", "Susan",
         "William", "Karen", "Richard", "Lisa", "Thomas", "Nancy", "Daniel", "Betty", "Mark", "Sandra"]
last = ["Smith", "Johnson", "Brown", "Davis", "Miller", "Wilson", "Moore", "Taylor", "Anderson", "Clark",
        "Lewis", "Walker", "Hall", "Allen", "Young", "King", "Wright", "Scott", "Green", "Baker"]
# (city, area code, IANA zone)
cities = [("New York", "212", "America/New_York"), ("Boston", "617", "America/New_York"),
          ("Miami", "305", "America/New_York"), ("Chicago", "312", "America/Chicago"),
          ("Dallas", "214", "America/Chicago"), ("Denver", "303", "America/Denver"),
          ("Seattle", "206", "America/Los_Angeles"), ("San Francisco", "415", "America/Los_Angeles")]
streets = ["Main Street", "Oak Avenue", "Maple Drive", "Cedar Lane", "Park Road", "Lake Street", "Hill Street"]
items = [("air purifier", 1299), ("coffee machine", 349), ("robot vacuum", 899), ("desk lamp", 59),
         ("blender", 129), ("electric kettle", 45), ("standing desk", 499)]
slots = ["tomorrow between 9 and 12 a.m.", "tomorrow afternoon", "on Friday morning", "the day after tomorrow"]

w = csv.writer(sys.stdout, lineterminator="\n")
w.writerow(["customer_id", "name", "phone", "city", "timezone", "purchase_freq", "avg_order",
            "interaction_count", "last_purchase", "last_interaction", "has_app",
            "order_id", "order_item", "order_amount", "order_address", "order_delivery", "consent"])
for i in range(150):
    city, area, tz = cities[i % len(cities)]
    item, price = random.choice(items)
    gender_title = "Ms." if i % 2 else "Mr."
    w.writerow([
        f"U{200000 + i}",
        f"{gender_title} {random.choice(last)}",
        f"+1{area}555{2000 + i:04d}",  # 555-2xxx: never one of customers.csv's +1 555-01xx numbers
        city, tz,
        random.randint(1, 20), random.randint(30, 2000), random.randint(0, 12),
        random.randint(1, 365), random.randint(1, 365), random.choice(["yes", "no"]),
        f"US2026{112500 + i}", item, price,
        f"{random.randint(1, 999)} {random.choice(streets)}, {city}",
        random.choice(slots),
        # Prior express consent on file (campaign-us.yaml requires it): every tenth customer has none.
        "no" if i % 10 == 9 else "yes",
    ])
