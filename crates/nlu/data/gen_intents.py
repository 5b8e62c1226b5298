#!/usr/bin/env python3
"""Generate the built-in intent training and held-out files from hand-written core phrases.

Each core phrase is written by hand (colloquial phone-call language). The script adds the
noise an ASR transcript of a phone call has: no punctuation, fillers (嗯/啊/那个, uh/um),
stutters, homophone substitutions, random spaces at pauses, dropped apostrophes.

The split is by core phrase (md5 of the phrase), so every held-out line comes from a phrase
whose variants training never sees. Output (deterministic, seed fixed):
  intents_zh.tsv / intents_en.tsv           training, label<TAB>text
  intents_zh.test.tsv / intents_en.test.tsv held-out
Run: python3 crates/nlu/data/gen_intents.py
"""
import hashlib
import os
import random
import re

HERE = os.path.dirname(os.path.abspath(__file__))

ZH = {
"affirm": """对|对的|是的|是我|嗯对|好的|好啊|可以|行|没问题|可以的|对对对|是啊|没错|嗯嗯 是的|好的好的|行吧|可以可以|是我本人|我就是|对 我是|那好吧|好的没问题|要的|需要的|挺感兴趣的|可以啊 你说|对的没错|是这样的|嗯 是的|好 你说吧|成|没毛病|那行|就这么办吧|我同意|我愿意|好的谢谢|对头|是滴|嗯呐|可以办|那你给我办一下吧|好 我听着呢|ok没问题|对 是我的号码|是本人|你说 我在听|有兴趣 说说看|行啊 那就办吧|好嘞|妥了|当然可以|嗯 可以考虑|对对 是他|我是他本人|嗯嗯你讲|你讲吧|好的你继续|可以呀|是的呢|那没问题|好呀|行行行|可以的呀没问题""",
"deny": """不是|不对|没有|不是的|没有啊|不是我弄的|不行|不可以|不要|不不不|没|不是这样的|没有没有|那倒没有|我不同意|不会|从来没有|我没有申请过|没这回事|不是这个|我没说过|不太对|不太行|不方便提供|不记得有这事|没印象|我没办过|也不是|算不上|没收到|没听说过|否|没有的事|不是吧 我没有|我没借过钱|我没下过单|不是我本人操作的|我没有欠款|这个不对啊|没用过|没去过|没有这个情况|我没有这张卡|不存在的""",
"busy_callback": """我在开车|在开会呢|现在不方便|晚点再打|等会儿打过来|我正忙着呢|明天再说吧|下午再打给我|我在上班不方便接|在吃饭呢 回头说|一会再联系|过半小时再打|我现在没空|正在开车不方便|你晚上再打来吧|明天上午再打|我在外面忙|待会儿我给你回过去|现在忙 改天吧|下周再联系我|在带孩子没时间|改天再说|这会儿不方便说话|我在医院不方便|正在开会 晚点联系|你一个小时以后再打|晚上八点以后打给我|现在在忙 你过会儿打|我这边有点事 等下再说|在上课呢|我在工地上干活|我在洗澡|周末再打吧|回头再聊|等我下班再说|明天下午三点再打过来|下周三上午联系我吧|我在高速上|在忙 晚些时候再说|我在开车呢 晚点打|十分钟以后再打|正在办事 晚点|手头有事 稍后再打""",
"not_interested": """不需要|不需要 谢谢|没兴趣|不感兴趣|不用了|算了吧|我不要|不考虑|暂时不需要|没这个需求|不买|不想办|不用了谢谢|没什么兴趣|这个我用不上|我不缺钱|不贷款|不办卡|不想了解|没必要|我不投资|不玩这个|不用给我介绍了|这个不适合我|没需求|我不太需要|用不着|不用麻烦了|我对这个没兴趣|免了吧|不搞这个|谢谢 不用|别介绍了 我不要|我不想换套餐|保险我不买|我不炒股|我不需要什么理财|没打算买|不了不了|我没那个想法|不想参加|这个活动我不参加|目前没有这个打算""",
"do_not_call": """别再给我打电话了|不要再打了|以后别打了|把我号码删了|把我从名单里去掉|再打我就报警了|我要把你们拉黑|别骚扰我了|不要再打这个号码|你们天天打烦不烦|以后不要联系我|把我的电话删掉|我不想再接到你们的电话|请不要再打扰我|停止给我打电话|别再来电了|我已经说过不要打了|我的号码不许再打|以后都别打过来了|退订|不要给我打推销电话|别打了行不行|你们再打我就举报|把我加到免打扰名单|我要求你们不再联系我|你们怎么老打|一天打三次有病吧|不要再拨这个号了|这个号码以后别打了|删掉我的号码|别再打给我了听到没|再打电话我就去告你们|把我列入黑名单|以后不准再打|永远别打过来""",
"ask_identity": """你是谁|你哪位|你是哪里|哪个公司的|你们是干什么的|你是机器人吗|你是真人吗|你叫什么名字|你们公司叫什么|你从哪打来的|你怎么知道我电话的|你是哪个银行的|请问你是|你谁啊|你们是正规公司吗|你是骗子吧|你是什么单位的|哪位啊|你是哪个平台的|你是客服吗|谁给你的号码|你是不是诈骗电话|你是人还是机器|你是哪儿的|你是哪家的|你们是做什么的|你工号多少|你是谁啊 打电话干嘛|你哪里的啊|你们从哪里搞到我号码的|你是录音吗|你是哪个部门的|你代表哪家公司|你是中介吧|哪个单位打的电话|你是哪个公司的业务员|你们是哪个单位的|你是做什么的""",
"request_human": """转人工|我要人工|找个真人跟我说|让你们客服接|人工服务|转人工客服|我不跟机器说话|换个人来|叫你们经理来|有没有人工|我要跟真人聊|帮我接人工|让真人给我打|转接客服|找你们领导|能不能换人工|我想跟工作人员说|人工台|转一下人工好吗|你让负责人跟我说|我要找活人|别让机器人跟我说|接线员|人工 人工|叫个人来接|有没有客服专员|让你们业务员联系我|请帮我转到人工坐席|我要和你们主管通话|给我接个真人|让人工客服跟我讲|不要机器 要人工|给我换个客服|叫个真人来|找个人工来|让人来接电话|接一下人工""",
"ask_info": """多少钱|怎么收费|利息多少|有什么优惠|具体什么内容|怎么办理|需要什么材料|能便宜点吗|额度有多少|要交什么费用|什么活动|详细说说|有效期多久|在哪里办|怎么领取|有没有年费|具体怎么操作|还款期限是多久|能分期吗|送什么礼品|到账要多久|你再介绍一下这个产品|流量有多少|是免费的吗|要不要押金|有什么条件|支持哪些银行|什么时候截止|不满意怎么退|套餐包含什么|那个利率是多少啊|要签合同吗|是什么产品|年化收益多少|一个月多少钱|手续费怎么算|可以线上办吗|需要带身份证吗|最多能借多少|怎么参加这个活动|送的东西是什么|怎么退款|怎么报名|包含哪些服务|有哪些套餐""",
"already_done": """我已经办了|已经还了|钱已经还上了|早就买过了|已经交过了|我昨天已经付了|已经处理好了|我已经开通了|已经续费了|已经有一张了|上周就弄好了|我早就办过了|已经升级了|前两天已经还清了|已经转账了|已经签收了|我已经在app上操作了|已经报名了|已经参加过了|已经跟你们同事说过了|我已经预约了|都办完了|已经缴费了|已经激活了|我在网上已经办好了|已经取消了|之前已经买了|那个早就弄完了|还款已经还了呀|我今天早上刚还|刚刚已经付过款了|我已经领过了|上个月就结清了|我已经提交资料了|昨天就打过钱了|已经搞定了""",
"complaint": """你们服务太差了|我要投诉|上次的问题还没解决|你们的产品有问题|我被乱扣费了|客服态度太差|等了一个月都没人处理|你们这是欺诈|东西坏了没人管|退款一直没到|你们乱收费|质量太差了|说好的优惠没给|网络老是断|我要投诉你们|打了好多次客服都没用|太坑了|你们骗人|发货太慢了|扣了我两次钱|信号很差|账单不对|承诺的没兑现|我非常不满意|你们工作人员骂人|我要找消协|你们的app老是闪退|维修师傅一直没来|积分莫名其妙没了|你们把我的钱弄哪去了|快递丢了也没人赔|宽带装了半个月还没好|多收了我五十块钱|你们的售后就是摆设|产品跟宣传的完全不一样|我要去12315告你们|多扣了我的费用|乱扣费|网络装了好久还没好|等了好多天了|你们扣我钱干嘛""",
"wrong_number": """你打错了|打错电话了|我不是张先生|这里没有这个人|你找错人了|我不认识他|这不是他的号码|号码换人了|我不是你说的那个人|这个号是我新办的|没有叫王丽的|你说的那个人我不认识|他已经不用这个号了|你找的人不在这|我姓李不姓刘|这是公司座机|我不叫这个名字|你要找的人我不认识|错了错了 不是我|这号我刚换的|他不在这个号了|你弄错了吧 我不是|这里是饭店|这个号码不是他的|我不是机主|你要找的是我爸吧 他不用这个号了|没这个人|我们家没有姓陈的|打错了吧你|这个手机号以前是别人的""",
"repeat": """你说什么|没听清|再说一遍|啥|什么|你说啥|听不清楚|信号不好没听到|你再说一下|慢点说|大声点|能重复一下吗|刚才说的什么|没听懂|听不懂你在说什么|喂 听得见吗|什么意思|啊 什么|你讲慢一点|再讲一遍|声音太小了|断断续续的|刚才没听见|你说的是什么东西|麻烦重复一下|哪个|你刚刚说啥来着|我没听明白|能说普通话吗|说清楚点|你说话有回音|刚才卡了 你再说|啥玩意儿 没听清|你重新说一下|能不能说慢点|你说的啥|你再讲讲|没听明白你说的|喂喂喂|你说哪一个""",
"unknown": """今天天气真好|我在吃苹果|你吃饭了吗|孩子在哭|等一下我关个门|哈哈哈|那个什么来着|我儿子考上大学了|最近股市跌了|楼下好吵|我家狗叫了|明天要下雨|今天星期几|我刚下班|你那边冷不冷|我在听歌|电视在放新闻|外卖到了|我去拿个快递|嗯 那个就是说|这个那个|红烧肉怎么做|世界杯谁赢了|我老婆叫我|这个月好累|车子刚保养完|天这么热|我家猫跑出去了|隔壁在装修|晚饭吃啥好呢|路上堵车了|我刚睡醒|手机屏幕摔坏了|今天过节|小区停电了|我在看球赛|我在钓鱼|今天菜价又涨了|我在打游戏|刚下雨了|我在排队""",
}

EN = {
"affirm": """yes|yeah|yep|sure|that's right|correct|speaking|this is he|yes it is|uh huh|okay|ok sounds good|sure go ahead|absolutely|of course|yeah that's me|right|mhm|fine|alright|yes please|i'd like that|definitely|go on|yeah i'm interested|sounds great|why not|yes i am|you got it|that works|sure thing|yes that's correct|i guess so|yeah sure|okay go ahead|that's fine|yes this is my number|that would be great|count me in|let's do it|yes i'm listening|that's me|i'm in|that'd be nice|sure why not|yes go on|uh huh go ahead|i agree|sounds about right|yes sir|yes ma'am|ok cool|great|perfect|sure i can do that|yeah yeah|that is correct|affirmative|i would like that|please go ahead""",
"deny": """no|nope|no it's not|that's not right|not really|no i didn't|i never did that|incorrect|no that's wrong|nah|no i haven't|i don't think so|not at all|no it isn't|that's not true|i did not|negative|no i don't|never|no not me|no i never applied|that never happened|no way|not that i know of|no i don't have one|i don't remember doing that|absolutely not|no sir|no ma'am|nah not really|i never ordered that|i never borrowed anything|i don't owe anything|that isn't my account|no i wasn't|no i did not|nah never|no i have not|no not at all|no that's incorrect|no i didn't order anything""",
"busy_callback": """i'm driving|i'm in a meeting|can you call back later|call me tomorrow|i'm busy right now|this isn't a good time|call me back in an hour|i'm at work|can we talk later|i'm in the middle of something|try me this evening|call me after five|i'm at dinner|not now call later|i'll call you back|give me a call next week|i'm on another call|catch me tomorrow morning|i'm busy call back in thirty minutes|i can't talk right now|i'm at the doctor's|could you ring me later|can you call again this afternoon|bad time right now|i'm driving call me later|i'm with a client|reach me after eight tonight|maybe later today|call back on monday|i'm cooking right now|i'm about to board a plane|now's not good try tomorrow|i'm putting the kids to bed call later|in class right now|give me ten minutes and call back|i'm at the dentist|i'm at the gym|i'm in the shower|i'm at the store|call me in the morning|reach me tomorrow afternoon|later please|i'm in a rush|i'm stuck in traffic|i have to go call me later|can you try again later|i'm at lunch call back at two""",
"not_interested": """not interested|no thanks|i'm not interested|i don't need it|no thank you|i'll pass|not for me|i'm good thanks|we don't need that|i don't want it|not right now thanks|we're fine|no need|i'm all set|thanks but no thanks|don't need any|i'm not looking for that|not buying|i have no interest|that's not something i need|i'm happy with what i have|i don't want a loan|i'll have to decline|i don't think i need that|no i'm good|not interested at all|save it|i'm not in the market|don't want to hear it|i'm not switching providers|we're not looking to invest|i don't do surveys|no need for insurance|i'm fine with my current plan|i don't want to buy anything|not buying anything today|i'm not shopping for that|we're not interested in that|not my thing|i'm okay without it|i have no use for it|don't bother|not today thank you|no i don't want to sign up""",
"do_not_call": """stop calling me|don't call me again|take me off your list|remove my number|put me on the do not call list|never call this number again|quit calling|stop calling or i'll report you|unsubscribe me|i don't want any more calls|lose my number|delete my number|you people keep calling|how many times do i have to tell you to stop calling|do not contact me again|stop harassing me|no more calls please|remove me from your call list|i've asked you to stop calling|don't ever call here again|stop with the calls|take this number off your list|i'm on the do not call registry|cease calling|please stop phoning me|if you call again i'm reporting you|erase my number from your system|this is the third call today stop|never ring me again|put my name on the do not call list|add me to your no call list|stop calling this line|i've told you three times stop|this is harassment stop calling|no more calls from you|please don't ring this number|take my name off""",
"ask_identity": """who is this|who's calling|who are you|what company are you with|where are you calling from|is this a robot|am i talking to a real person|what's your name|how did you get my number|who do you work for|is this a scam|which bank is this|who am i speaking with|are you a bot|what's this company|are you a real person|who gave you my number|what organization are you from|what's your employee id|are you legit|sorry who|who are you with|is this a recording|what's the name of your company|are you a telemarketer|is this an automated call|who's this calling me|what agency is this|you with the bank or what|which company did you say|who am i talking to|is this a person or a machine|am i speaking to a computer|is this a live person|who sent you|what business are you from|where did you get my details""",
"request_human": """can i talk to a person|transfer me to a human|i want a real person|let me speak to an agent|operator|get me a representative|i don't want to talk to a machine|put a human on|can i speak to your manager|connect me to customer service|real person please|human please|agent|speak to someone|give me a live agent|i need to talk to a real human|let me talk to your supervisor|is there a person i can talk to|representative|transfer me please|get me someone real|i want to speak with a human being|talk to a live person|switch me to a human|put me through to a person|i'd rather talk to a real agent|stop the robot get me a person|i want to talk to somebody|transfer me to an operator|let me talk to a real person please|human agent|get me a supervisor|is there anyone i can talk to""",
"ask_info": """how much does it cost|what's the price|what's the interest rate|tell me more|what are the terms|how does it work|what do i need to sign up|is there a fee|what's the catch|how long does it take|what's included|any discounts|what's the monthly payment|is it free|how do i apply|what documents do you need|what's the deadline|can you explain the plan|what's the limit|how much data do i get|when does the offer end|where do i go|what are the benefits|can i pay in installments|do i have to sign a contract|what's the annual fee|what's the rate|how much can i borrow|can i do it online|what's the warranty|how long is the promotion|what kind of gift do i get|is there a cancellation fee|what does it include|how much per month|what's the fine print|what's the total cost|any hidden fees|how many minutes do i get|do you offer a trial|what's the minimum payment|when would it start""",
"already_done": """i already paid|i've already done it|already taken care of|i paid yesterday|i already have one|i signed up last week|it's done|i already renewed|i took care of that already|already paid it online|i already sent the money|done it already|i've already registered|i already booked|i already upgraded|i already spoke to someone about it|i made the payment this morning|already cancelled|it was settled last month|i already bought it|already activated|i already returned it|already submitted|i handled it already|the bill's been paid|i paid it off last week|i already filled out the form|we already switched|got it done already|already enrolled|i already took care of the bill|payment went through yesterday|i already did that online|we did it already|it's been paid in full""",
"complaint": """your service is terrible|i want to file a complaint|i was overcharged|nobody fixed my problem|this is ridiculous|you charged me twice|i've been waiting for weeks|your product broke|terrible customer service|you people are scammers|my refund never came|the internet keeps dropping|i'm very unhappy with your company|your staff was rude|the delivery is late again|you promised a discount and didn't give it|my bill is wrong|i'm going to report you to the better business bureau|i want my money back|worst company ever|the app keeps crashing|still no technician|you lost my package|i've called five times and nothing|you cheated me|the signal is awful|my order arrived damaged|you double billed my card|nobody ever calls back|the product is nothing like the ad|i've been on hold for hours|i waited all day and nobody came|this is the worst service|horrible experience|you keep ignoring me|i've been waiting a month|nothing ever gets fixed|i'm sick of your company|i'm disgusted with this""",
"wrong_number": """wrong number|you have the wrong number|there's no one here by that name|i'm not john|you've got the wrong person|i don't know who that is|this isn't her number anymore|nobody named sarah lives here|i think you dialed wrong|he doesn't have this number anymore|i just got this number|this is a business line|never heard of him|you must have the wrong person|this is not mary|i'm not the person you're looking for|no one by that name|he moved out years ago|she changed her number|wrong person|there's no mike here|this number belongs to me not him|you got the wrong house|i'm not the account holder|that person doesn't live here|he's not at this number anymore|they moved|i'm not him|this isn't his phone|you're looking for someone else""",
"repeat": """what|sorry|pardon|what did you say|can you repeat that|say that again|i didn't catch that|come again|you're breaking up|speak up please|slow down|i can't hear you|one more time|huh|excuse me|what was that|could you say it again|sorry i missed that|the line is bad|i didn't understand|can you speak louder|repeat please|what do you mean|say again|you cut out|you're too quiet|hello can you hear me|sorry what was that last part|run that by me again|what now|sorry what|what are you saying|eh|what's that|i don't get it""",
"unknown": """the weather is nice today|hold on my dog is barking|i'm eating lunch|ha ha|my kid is crying|what time is it|i just got home|the game is on|i like pizza|it's raining here|wait what day is it|my wife is calling me|um so like|the traffic is crazy|i need coffee|my neighbor is loud|i'm watching tv|did you see the news|it's so hot|i love this song|my car needs gas|i'm at the park|the package arrived|the cat knocked something over|we're having a barbecue|my phone screen cracked|happy holidays|the power just went out|i'm making pasta|i'm baking cookies|i'm at the beach|the baby's sleeping|we're watching a movie|i'm gardening|my tea is getting cold|it's my birthday|i'm doing laundry|the kettle is boiling|i'm cleaning the house""",
}


# Compositional templates: "A|B" alternatives per slot, slots joined in order.
# Every combination is a possible core phrase; a fixed number is sampled per label.
ZH_T = {
"affirm": [["嗯|对|好|行|可以|是的|没问题|对对|好嘞"], ["|你说|你继续说|我在听|就这样|那就办吧|我同意|没错|是我本人|我感兴趣"]],
"deny": [["不是|没有|不对|不不|没"], ["|我没办过|我没申请过|不是我|这事我不知道|没这回事|不是这样|我没欠钱|我没买过|从来没有过"]],
"busy_callback": [["|我|我现在|我这会儿|不好意思我|哎呀我|我正"], ["在开车|在开会|在上班|在忙|在外面|在吃饭|在地铁上|在带孩子|在医院|在办事|在高铁上|在上课"], [" 晚点打| 晚点再打| 等会再打给我| 回头再说| 你过会儿打过来| 明天再打吧| 下午再联系| 改天聊| 现在不方便| 没空说| 一个小时以后再打| 晚上再说"]],
"not_interested": [["|不好意思|谢谢|算了|哎"], ["不需要|不用了|没兴趣|不感兴趣|不考虑|不要|用不上|没需求|不想办|不想要"], ["|了|了谢谢|这个|你们的|什么贷款|什么保险|什么理财|办卡|换套餐|这个活动"]],
"do_not_call": [["|以后|你们以后|求求你们|拜托|我说了"], ["别再打了|不要再打了|别给我打电话了|不要再打给我|别打这个号码了|把我号码删了|把我拉进黑名单|别再骚扰我了|不要再联系我"], ["|再打我就投诉|再打就报警|听见没有|烦死了|行不行|谢谢"]],
"ask_identity": [["|喂|请问|等一下|哎"], ["你是谁|你哪位|你是哪里的|你们是哪个公司|你是机器人吗|你是真人吗|谁让你打的|你怎么有我电话|你是干嘛的|你们什么单位"], ["|啊|呀|打电话干嘛|有什么事|我不认识你"]],
"request_human": [["|我要|帮我|麻烦|请|能不能|给我"], ["转人工|找人工|接人工客服|转真人|找你们经理|让客服跟我说|换个真人|接你们主管|找个活人"], ["|吧|好吗|我不想跟机器说|快点|谢谢"]],
"ask_info": [["|那|请问|你说的|这个|那个"], ["多少钱|怎么收费|利息多少|什么优惠|怎么办理|要什么材料|额度多少|有什么活动|要交钱吗|是免费的吗|怎么还款|多久到账|手续费多少|利率多少"], ["|啊|呢|你说一下|具体说说|能详细介绍一下吗"]],
"already_done": [["|我|我们|那个|我昨天|我上周|我刚才"], ["已经办了|已经还了|已经交了|已经付过了|早就办好了|已经开通了|已经续费了|已经弄好了|已经处理了|已经转账了|已经买了"], ["|啊|呀|不用再说了|你们查一下|早就弄完了"]],
"complaint": [["|我说|你们|我跟你说|真的"], ["服务太差|乱扣我钱|问题一直没解决|态度太恶劣|质量太差|退款还没到|账单有问题|信号太差|一直没人处理|承诺的不兑现|多收了我的钱"], ["|我要投诉|太坑了|我很不满意|太过分了|什么玩意儿"]],
"wrong_number": [["|你|你是不是|不好意思你|哎你"], ["打错了|找错人了|打错电话了|弄错了"], ["|我不是他|这里没这个人|我不认识他|他早就不用这个号了|我不姓王|这号是我新办的"]],
"repeat": [["|啊|喂|什么|嗯"], ["你说啥|没听清|再说一遍|听不清|你说什么|能再说一次吗|没听懂|说慢点|大声一点|刚才说的啥"], ["|啊|信号不好|我这边太吵|你那边有杂音"]],
"unknown": [["|哎|那个|嗯"], ["今天好热|我在做饭|孩子在闹|外面在下雨|我刚到家|狗在叫|我在看电视|快递到了|我在吃饭呢没事|隔壁好吵|我在散步|我刚起床"], ["|哈哈|你知道吧|真烦|没事"]],
}
EN_T = {
"affirm": [["|yes|yeah|sure|okay|alright|right|absolutely"], ["|go ahead|that's me|that's correct|i'm listening|sounds good|let's do it|i'm interested|please continue|that works for me"]],
"deny": [["no|nope|nah|no no"], ["|i didn't|that wasn't me|i never did that|that's not right|i don't have that|i never signed up|i don't owe anything|not true"]],
"busy_callback": [["|sorry|look|hey"], ["i'm driving|i'm in a meeting|i'm at work|i'm busy|i'm out right now|i'm eating|i'm on the train|i'm with the kids|i'm at the hospital|i'm in class|i'm on another line"], ["|call me later|call back tomorrow|try me in an hour|can we talk later|call me this evening|ring me after five|not a good time|call back next week|call me back"]],
"not_interested": [["|sorry|thanks but|look|honestly"], ["not interested|i don't need it|no thanks|i'll pass|i don't want it|not for me|we're good|i'm all set|no need"], ["|thanks|right now|at all|i'm fine|in any loan|in insurance|in switching|in your offer"]],
"do_not_call": [["|please|look|seriously|i told you"], ["stop calling me|don't call again|take me off your list|remove my number|put me on your do not call list|never call me again|quit calling|stop harassing me|no more calls"], ["|or i'll report you|ever|please|i'm done|right now"]],
"ask_identity": [["|hello|wait|sorry|excuse me"], ["who is this|who are you|who's calling|what company is this|is this a robot|are you a real person|how did you get my number|who do you work for|where are you calling from|what's your name"], ["|exactly|again|please|what do you want"]],
"request_human": [["|can i|let me|i want to|i need to|please"], ["talk to a person|speak to a human|get a real agent|talk to your manager|speak with a representative|reach customer service|talk to someone real|speak to a live agent"], ["|please|now|not a robot|thank you"]],
"ask_info": [["|so|okay|and|wait"], ["how much is it|what's the price|what's the interest rate|how does it work|what are the fees|how do i sign up|what do i get|is it free|how long does it take|what are the terms|what's the monthly cost|what's the discount"], ["|exactly|then|tell me more|can you explain"]],
"already_done": [["|i|we|oh i|actually i"], ["already paid|already did it|already signed up|already renewed|already have one|already took care of it|already sent it|already cancelled|already upgraded"], ["|yesterday|last week|this morning|online|a while ago|thanks"]],
"complaint": [["|honestly|listen|look"], ["your service is awful|you overcharged me|my problem is still not fixed|your staff was rude|the product is broken|my refund never arrived|my bill is wrong|the connection keeps dropping|nobody ever helps me|you charged me twice"], ["|i want to complain|this is unacceptable|i'm fed up|i'm filing a complaint|terrible"]],
"wrong_number": [["|sorry|i think|uh"], ["wrong number|you have the wrong number|you got the wrong person|there's nobody by that name here|that's not me|you dialed wrong"], ["|he doesn't live here|i just got this number|i don't know him|she's not here|no one named that"]],
"repeat": [["|sorry|hello|um"], ["what did you say|say that again|i didn't catch that|can you repeat that|i can't hear you|come again|speak up|slow down|what was that|pardon"], ["|please|the line is bad|you're breaking up|it's noisy here"]],
"unknown": [["|oh|hey|um"], ["it's really hot today|i'm cooking dinner|the kids are loud|it's raining outside|i just got home|my dog is barking|i'm watching the game|my package came|i'm on my walk|just woke up"], ["|ha ha|you know|anyway"]],
}


def expand(slots, rng, k):
    alts = [s[0].split("|") for s in slots]
    total = 1
    for a in alts:
        total *= len(a)
    out = set()
    tries = 0
    while len(out) < min(k, total) and tries < k * 50:
        tries += 1
        parts = [rng.choice(a) for a in alts]
        s = " ".join(p for p in parts if p.strip())
        s = re.sub(r"\s+", " ", s).strip()
        if s:
            out.add(s)
    return sorted(out)


ZH_FILLERS_PRE = ["嗯", "啊", "呃", "那个", "哎", "喂", "就是", "嗯嗯", "哦", "额", "嗯 那个", "哎呀"]
ZH_FILLERS_POST = ["啊", "呀", "哈", "呢", "哦", "嘛"]
ZH_HOMOPHONES = [("在", "再"), ("再", "在"), ("的", "得"), ("吗", "嘛"), ("已经", "以经"), ("需要", "须要"),
                 ("账", "帐"), ("那", "哪"), ("做", "作"), ("知道", "知到"), ("号码", "号吗"), ("电话", "店话"),
                 ("没有", "没由"), ("办理", "半理"), ("一下", "一哈"), ("什么", "神马"), ("现在", "先在")]
EN_FILLERS_PRE = ["uh", "um", "oh", "well", "so", "hmm", "like", "hey", "uh well", "listen", "look"]
EN_FILLERS_POST = ["okay", "man", "you know", "thanks", "buddy", "alright"]
EN_HOMOPHONES = [("your", "you're"), ("you're", "your"), ("to", "too"), ("there", "their"), ("for", "four"),
                 ("want to", "wanna"), ("going to", "gonna"), ("right", "write"), ("i'm", "im"),
                 ("don't", "dont"), ("i'll", "ill"), ("can't", "cant"), ("that's", "thats"), ("it's", "its"),
                 ("because", "cuz"), ("okay", "ok"), ("call", "cal"), ("number", "numbers"), ("the", "a")]
# Post-fillers that would change the meaning of these labels are not used with them.
EN_NO_POST = {"affirm", "deny", "repeat", "complaint", "do_not_call"}


def zh_noise(rng, phrase, label):
    s = phrase
    if rng.random() < 0.45:
        a, b = rng.choice(ZH_HOMOPHONES)
        if a in s:
            s = s.replace(a, b, 1)
    if rng.random() < 0.1 and len(s) <= 4:
        s = s[0] + s
    if rng.random() < 0.45:
        s = rng.choice(ZH_FILLERS_PRE) + (" " if rng.random() < 0.5 else "") + s
    if rng.random() < 0.25 and label not in ("repeat",):
        s = s + rng.choice(ZH_FILLERS_POST)
    if " " in s and rng.random() < 0.4:
        s = s.replace(" ", "")
    elif " " not in s and len(s) > 5 and rng.random() < 0.2:
        k = rng.randrange(2, len(s) - 1)
        s = s[:k] + " " + s[k:]
    return s


def en_noise(rng, phrase, label):
    s = " " + phrase + " "
    for _ in range(2):
        if rng.random() < 0.4:
            a, b = rng.choice(EN_HOMOPHONES)
            if " " + a + " " in s:
                s = s.replace(" " + a + " ", " " + b + " ", 1)
    s = s.strip()
    if rng.random() < 0.45:
        s = rng.choice(EN_FILLERS_PRE) + " " + s
    if rng.random() < 0.2 and label not in EN_NO_POST:
        s = s + " " + rng.choice(EN_FILLERS_POST)
    if rng.random() < 0.08:
        w = s.split(" ")
        k = rng.randrange(len(w))
        w.insert(k, w[k])
        s = " ".join(w)
    if rng.random() < 0.3:
        s = s.replace("'", "")
    return s


COMPOSED_PER_LABEL = 40


def norm(text):
    """Like waihu_nlu::normalize: lower case, apostrophes dropped, punctuation to spaces."""
    t = text.lower().replace("'", "")
    t = re.sub(r"[^\w¥$%]+", " ", t)
    return t.strip()


def held_out(phrase):
    return int(hashlib.md5(phrase.encode("utf-8")).hexdigest(), 16) % 5 == 0


def build(table, templates, noise, lang, seed):
    rng = random.Random(seed)
    train, test = [], []
    for label, block in table.items():
        phrases = [p.strip() for p in block.split("|") if p.strip()]
        composed = expand(templates[label], random.Random("%s/%s" % (seed, label)), COMPOSED_PER_LABEL)
        if lang == "zh":
            # Chinese needs no space between slots, except where ASR marks a pause.
            composed = [c.replace(" ", "") if i % 3 else c for i, c in enumerate(composed)]
        phrases += [c for c in composed if c not in phrases]
        for p in phrases:
            test_phrase = held_out(p)
            n = 2 if test_phrase else 3
            seen = set()
            out = test if test_phrase else train
            # The clean phrase once, then noisy variants.
            cands = [p] + [noise(rng, p, label) for _ in range(8)]
            for c in cands:
                c = re.sub(r"[，。？！,.?!]", "", c).strip()
                if c and c not in seen:
                    seen.add(c)
                    out.append((label, c))
                if len(seen) >= n:
                    break
    # A noisy variant of a training phrase can coincide with a held-out line; training wins.
    seen_train = {norm(t) for _, t in train}
    test = [(l, t) for l, t in test if norm(t) not in seen_train]
    for name, rows in (("intents_%s.tsv" % lang, train), ("intents_%s.test.tsv" % lang, test)):
        with open(os.path.join(HERE, name), "w", encoding="utf-8") as f:
            for label, text in rows:
                f.write("%s\t%s\n" % (label, text))
        print(name, len(rows))


if __name__ == "__main__":
    build(ZH, ZH_T, zh_noise, "zh", 20261125)
    build(EN, EN_T, en_noise, "en", 20261125)
