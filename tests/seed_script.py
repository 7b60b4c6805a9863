# The founding blog post's script, in Python 3 spelling, unchanged but for
# HOST and PORT (and credentials from argv). SMTP(HOST, PORT) rather than
# SMTP() + connect(): on Python 3.11 the latter leaves starttls() without a
# server name and it raises before sending anything (a client quirk).
import smtplib, email.mime.text, sys

HOST, PORT = sys.argv[1], int(sys.argv[2])
mail_username, mail_password = sys.argv[3], sys.argv[4]
from_addr, to_addr = "leehark@example.test", "friend@example.test"

smtp = smtplib.SMTP(HOST, PORT)
smtp.set_debuglevel(1)
smtp.starttls()
smtp.login(mail_username, mail_password)
msg = email.mime.text.MIMEText('Hi ,I am leehark')
msg['From'] = from_addr; msg['To'] = to_addr; msg['Subject'] = 'hello , today is a special day'
smtp.sendmail(from_addr, [to_addr], msg.as_string())
smtp.quit()
