#!/usr/bin/env python3
"""Generate examples/customers.csv: fictional customers (no real people).

Deterministic (seeded). Mostly mainland-China mobiles, some US numbers for the
English demo, and three deliberately bad rows so an import shows its reject
report. Run: python3 examples/gen_customers.py > examples/customers.csv
"""
import random, sys, datetime

rng = random.Random(20261124)
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉兰建华建国志强海燕红梅晓东晓燕子涵浩然雨桐思远欣怡嘉怡俊杰梓轩一诺佳琪"
CITIES = [("北京", "北京"), ("上海", "上海"), ("广州", "广东"), ("深圳", "广东"), ("杭州", "浙江"), ("成都", "四川"),
          ("武汉", "湖北"), ("南京", "江苏"), ("西安", "陕西"), ("重庆", "重庆"), ("天津", "天津"), ("苏州", "江苏"),
          ("长沙", "湖南"), ("郑州", "河南"), ("青岛", "山东"), ("沈阳", "辽宁"), ("厦门", "福建"), ("昆明", "云南")]
PREFIX = ["130", "131", "132", "133", "134", "135", "136", "137", "138", "139", "150", "151", "152", "155",
          "156", "157", "158", "159", "180", "181", "182", "183", "186", "187", "188", "189"]
LEVELS = ["普通", "普通", "普通", "银卡", "银卡", "金卡", "钻石"]
US = [("Emily Carter", "415"), ("James Miller", "212"), ("Olivia Brown", "312"), ("Noah Wilson", "206"),
      ("Sophia Davis", "617"), ("Liam Moore", "713"), ("Ava Taylor", "303"), ("Mason Anderson", "602"),
      ("Isabella Thomas", "404"), ("Ethan Jackson", "305"), ("Mia White", "702"), ("Lucas Harris", "808")]

def given():
    n = rng.choice([1, 2, 2])
    out = ""
    while len(out) < n:
        out += rng.choice(GIVEN)
    return out[:n]

def row(i, name, phone, city, us=False):
    # Segment-shaped behaviour: some loyal big spenders, some active browsers, some lapsed.
    kind = rng.random()
    if kind < 0.2:
        freq, avg = rng.randint(6, 30), rng.randint(1001, 8000)
    elif kind < 0.5:
        freq, avg = rng.randint(1, 6), rng.randint(80, 1200)
    else:
        freq, avg = rng.randint(0, 4), rng.randint(30, 600)
    inter = rng.randint(0, 12)
    last_buy = rng.randint(1, 400)
    last_inter = rng.randint(1, 200) if kind < 0.7 else rng.randint(91, 365)
    reg = datetime.date(2019, 1, 1) + datetime.timedelta(days=rng.randint(0, 2500))
    order = f"DD{2026}{rng.randint(10**7, 10**8 - 1)}"
    amount = f"{rng.randint(20, 5000)}.{rng.randint(0, 99):02d}"
    level = rng.choice(LEVELS) if not us else rng.choice(["普通", "银卡", "金卡"])
    app = rng.choice(["是", "否"])
    return [f"C{100000 + i}", name, phone, city, level, str(freq), str(avg), str(inter), str(last_buy),
            str(last_inter), app, reg.isoformat(), order, amount]

header = ["客户编号", "姓名", "手机号", "城市", "会员等级", "购买频次", "平均客单价", "互动次数", "最近购买天数",
          "最近互动天数", "是否APP用户", "注册日期", "订单号", "订单金额"]
rows = []
used = set()
for i in range(300):
    while True:
        phone = rng.choice(PREFIX) + f"{rng.randint(0, 99999999):08d}"
        if phone not in used:
            used.add(phone)
            break
    if rng.random() < 0.3:
        phone = f"{phone[:3]}-{phone[3:7]}-{phone[7:]}"
    city, _ = rng.choice(CITIES)
    rows.append(row(i, rng.choice(SURNAMES) + given(), phone, city))
for j, (name, area) in enumerate(US):
    rows.append(row(300 + j, name, f"+1 {area} 555 {rng.randint(100, 199):04d}", "Overseas", us=True))
# Deliberately bad rows: an invalid number, a non-numeric count, a missing number.
rows.insert(40, ["C900001", "测试坏号", "12345", "北京", "普通", "1", "100", "1", "10", "10", "否", "2024-01-01", "DD1", "10.00"])
rows.insert(120, ["C900002", "格式错误", "13912345670", "上海", "普通", "很多", "100", "1", "10", "10", "否", "2024-01-01", "DD2", "10.00"])
rows.insert(200, ["C900003", "没有电话", "", "广州", "普通", "1", "100", "1", "10", "10", "否", "2024-01-01", "DD3", "10.00"])

import csv
w = csv.writer(sys.stdout, lineterminator="\n")
w.writerow(header)
w.writerows(rows)
