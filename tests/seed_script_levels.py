# The founding script (seed_script.py) with smtplib's debug output on from
# the connection itself, so that it prints connect: and the greeting too:
# set_debuglevel() can only be called after SMTP(HOST, PORT) has connected,
# so the level is set on the class. argv: HOST PORT USER PASSWORD LEVEL.
import smtplib, email.mime.text, sys

HOST, PORT = sys.argv[1], int(sys.argv[2])
mail_username, mail_password = sys.argv[3], sys.argv[4]
LEVEL = int(sys.argv[5])
from_addr, to_addr = "leehark@example.test", "friend@example.test"


class SMTP(smtplib.SMTP):
    debuglevel = LEVEL


smtp = SMTP(HOST, PORT)
smtp.starttls()
smtp.login(mail_username, mail_password)
msg = email.mime.text.MIMEText('Hi ,I am leehark')
msg['From'] = from_addr; msg['To'] = to_addr; msg['Subject'] = 'hello , today is a special day'
smtp.sendmail(from_addr, [to_addr], msg.as_string())
smtp.quit()
